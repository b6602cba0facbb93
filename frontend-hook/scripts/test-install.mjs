// Install test: the package as an app really gets it, in a throwaway React app, under Node.
//
//  1. copies this package's sources, without node_modules/ or dist/ (a fresh clone), to a temp dir;
//  2. `npm pack` there: `prepare` must install the build tools and build dist/ by itself;
//     the tarball's file list goes through scripts/check-pack.mjs;
//  3. a temp app (package.json: react, react-dom, @types/react and the tarball) `npm install`s it;
//     checks: exactly one React in node_modules; the hook renders (react-dom/server) with no
//     "Invalid hook call"; require() works where Node has require(esm); the types resolve
//     under moduleResolution bundler and nodenext; the installed files pass check-pack.mjs;
//  4. a plain `npm install <path>` (a symlink: two Reacts) must be refused with the fix;
//  5. `npm install --install-links <path>` (a copy) must work, with the same checks.
//
// Needs npm and the npm registry (or a warm npm cache). Takes about 30 s (2 cores, warm npm cache).
// WAYMARK_TEST_REACT=19.1.0 tries another React; KEEP_TMP=1 keeps the temp dir.
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkPack, printFiles } from './check-pack.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const REACT = process.env.WAYMARK_TEST_REACT || '^18.3.1'
const TYPES = REACT.replace(/^\D*/, '').startsWith('18') ? '^18.3.0' : `^${REACT.replace(/^\D*/, '').split('.')[0]}`
const t0 = Date.now()
const step = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`)
const fail = (msg) => {
  console.error(`\ninstall test FAILED: ${msg}\n(temp dir kept: ${tmp})`)
  process.exit(1)
}

// Settings of an outer `npm run` (npm_config_*) are not meant for the npm commands run here.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(config|package|lifecycle)_/i.test(k)))
const npm = (args, cwd) => spawnSync('npm', args, { cwd, env, encoding: 'utf8', shell: process.platform === 'win32' })
const mustNpm = (args, cwd) => {
  const r = npm(args, cwd)
  if (r.status !== 0) fail(`npm ${args.join(' ')} (in ${cwd}) exited ${r.status}:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

const tmp = mkdtempSync(join(tmpdir(), 'waymark-hook-install-'))
const pkgDir = join(tmp, 'frontend-hook')
const app = join(tmp, 'app')

// 1. A fresh clone of the package: what git tracks, no build output, no node_modules.
const SKIP = new Set(['node_modules', 'dist', 'e2e-dist', 'coverage'])
cpSync(root, pkgDir, {
  recursive: true,
  filter: (src) => !SKIP.has(basename(src)) && !/\.(tgz|tsbuildinfo)$/.test(src),
})
step(`copied the package sources to ${pkgDir}`)

// 2. npm pack on the fresh copy.
const [info] = JSON.parse(mustNpm(['pack', '--json', '--pack-destination', tmp], pkgDir))
const tarball = join(tmp, info.filename)
if (!existsSync(tarball)) fail(`npm pack made no ${tarball}`)
step(`npm pack on a fresh copy (prepare installed the tools and built dist/): ${info.filename}`)
printFiles(info)

// 3. A throwaway app installs the tarball.
cpSync(join(root, 'scripts', 'install-test-app'), app, { recursive: true })
const manifest = (hook) => ({
  name: 'waymark-hook-install-test',
  private: true,
  type: 'module',
  dependencies: { react: REACT, 'react-dom': REACT, '@types/react': TYPES, '@waymark/react-hook': hook },
})
writeFileSync(join(app, 'package.json'), JSON.stringify(manifest(`file:${tarball}`), null, 2))
mustNpm(['install', '--no-audit', '--no-fund'], app)
step(`npm install in a React app (react ${REACT}) with the tarball`)

const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc')
function checkApp(how, { types = true } = {}) {
  // Exactly one React, at the app's top level; nothing nested under the hook.
  const reacts = []
  const scan = (dir) => {
    if (!existsSync(dir)) return
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() && !e.isSymbolicLink()) continue
      const p = join(dir, e.name)
      if (e.name.startsWith('@')) scan(p)
      else {
        if (e.name === 'react' && basename(dir) !== '@types') reacts.push(p)
        scan(join(p, 'node_modules'))
      }
    }
  }
  scan(join(app, 'node_modules'))
  if (reacts.length !== 1) fail(`${how}: ${reacts.length} copies of react in the app:\n  ${reacts.join('\n  ')}`)
  const hookDir = join(app, 'node_modules', '@waymark', 'react-hook')
  if (existsSync(join(hookDir, 'node_modules'))) fail(`${how}: the hook brought its own node_modules/`)

  for (const script of ['render.mjs', 'render.cjs']) {
    if (script.endsWith('.cjs') && !process.features.require_module) {
      step(`${how}: skipped require() (Node ${process.version} has no require(esm))`)
      continue
    }
    const r = spawnSync(process.execPath, [script], { cwd: app, env, encoding: 'utf8' })
    if (r.status !== 0 || /Invalid hook call/i.test(r.stdout + r.stderr)) fail(`${how}: node ${script}:\n${r.stdout}\n${r.stderr}`)
    step(`${how}: node ${script}: ${r.stdout.trim()}`)
  }
  if (!types) return
  for (const [mod, res] of [['esnext', 'bundler'], ['nodenext', 'nodenext']]) {
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--jsx', 'react-jsx', '--module', mod, '--moduleResolution', res,
      '--target', 'es2022', '--lib', 'es2022,dom', '--types', 'react', 'types-check.ts'], { cwd: app, env, encoding: 'utf8' })
    if (r.status !== 0) fail(`${how}: types do not resolve (moduleResolution ${res}):\n${r.stdout}${r.stderr}`)
  }
  step(`${how}: types resolve (moduleResolution bundler, nodenext)`)
}
checkApp('tarball')
const problems = checkPack(info, join(app, 'node_modules', '@waymark', 'react-hook'))
if (problems.length) fail(`the packed files:\n  ${problems.join('\n  ')}`)
step('packed files checked (scripts/check-pack.mjs)')

// 4. A plain path install symlinks the package: it must stop with the way out, and change nothing.
const linked = npm(['install', '--no-audit', '--no-fund', pkgDir], app)
if (linked.status === 0) fail('a plain `npm install <path>` (symlink, two Reacts) was not refused')
if (!/--install-links/.test(linked.stderr)) fail(`the refused linked install does not say what to do:\n${linked.stderr}`)
step('plain `npm install <path>` (a symlink) refused with the --install-links advice')

// 5. The path install that copies.
mustNpm(['install', '--no-audit', '--no-fund', '--install-links', pkgDir], app)
step('npm install --install-links <path>')
checkApp('path (--install-links)', { types: false }) // same dist/ as the tarball's

if (process.env.KEEP_TMP) console.log(`kept ${tmp}`)
else rmSync(tmp, { recursive: true, force: true })
step('install test passed')
