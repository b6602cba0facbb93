// What `npm pack` / `npm publish` would ship, checked: exactly dist JS + .d.ts, README, LICENSE
// and package.json; no sources, tests, maps or node_modules; every entry point and every import
// inside the package resolves; React is a peer and the only outside import.
//
//   node scripts/check-pack.mjs      runs `npm pack --dry-run --json` (which runs `prepare`, i.e.
//                                    the same fresh build as a publish) and checks its answer.
// scripts/test-install.mjs imports checkPack() for the real tarball it installs.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'

const EXACT = [
  'package.json',
  'README.md',
  'LICENSE',
  'dist/index.js',
  'dist/index.d.ts',
  'dist/tracker.js',
  'dist/tracker.d.ts',
  'dist/hook.d.ts',
  'dist/boundary.d.ts',
  'dist/types.d.ts',
]
const CHUNK = /^dist\/chunk-[A-Z0-9]+\.js$/ // esbuild's shared code for the two entry points
const PEERS = new Set(['react'])

const specifiers = (code) =>
  [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)].map((m) => m[1])

/** packInfo: one element of `npm pack --json`; dir: a folder holding the packed files. */
export function checkPack(packInfo, dir) {
  const problems = []
  const files = packInfo.files.map((f) => f.path)
  const have = new Set(files)
  for (const f of EXACT) if (!have.has(f)) problems.push(`missing from the package: ${f}`)
  for (const f of files) if (!EXACT.includes(f) && !CHUNK.test(f)) problems.push(`should not be in the package: ${f}`)
  if (!files.some((f) => CHUNK.test(f))) problems.push('no dist/chunk-*.js (shared code of index.js and tracker.js)')

  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const deps = { ...pkg.dependencies, ...pkg.optionalDependencies }
  if (Object.keys(deps).length) problems.push(`runtime dependencies declared: ${Object.keys(deps).join(', ')} (there should be none)`)
  if (pkg.bundleDependencies || pkg.bundledDependencies) problems.push('bundled dependencies declared')
  if (!pkg.peerDependencies?.react) problems.push('react is not a peerDependency')
  if (pkg.peerDependenciesMeta?.react?.optional) problems.push('react is marked as an optional peer; the hook needs it')
  if (pkg.sideEffects !== false) problems.push('"sideEffects" is not false')
  if (pkg.type !== 'module') problems.push('"type" is not "module"')
  if (!pkg.engines?.node) problems.push('no engines.node')
  if (packInfo.bundled?.length) problems.push(`npm would bundle: ${packInfo.bundled.join(', ')}`)

  // Entry points: main, types and every exports target exist in the package.
  const targets = [pkg.main, pkg.types]
  const walk = (v) => (typeof v === 'string' ? targets.push(v) : v && Object.values(v).forEach(walk))
  walk(pkg.exports)
  for (const t of targets) {
    const p = posix.normalize(t ?? '')
    if (!have.has(p)) problems.push(`entry point ${t} is not in the package`)
  }
  for (const [sub, conds] of Object.entries(pkg.exports ?? {})) {
    if (typeof conds !== 'object') continue
    const keys = Object.keys(conds)
    if (keys[0] !== 'types') problems.push(`exports["${sub}"]: "types" must come first (TypeScript takes the first match)`)
    if (keys.at(-1) !== 'default') problems.push(`exports["${sub}"]: no "default" last`)
  }

  // Imports inside the package: relative ones resolve to packed files, bare ones are peers.
  for (const f of files.filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
    const code = readFileSync(join(dir, f), 'utf8')
    if (f.endsWith('.js') && /sourceMappingURL/.test(code)) problems.push(`${f} points to a source map that is not shipped`)
    for (const s of specifiers(code)) {
      if (s.startsWith('.')) {
        if (!/\.js$/.test(s)) problems.push(`${f}: import "${s}" has no .js extension (breaks Node and moduleResolution node16)`)
        const target = posix.join(posix.dirname(f), s)
        const want = f.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target
        if (!have.has(want)) problems.push(`${f}: import "${s}" -> ${want}, not in the package`)
      } else {
        const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]
        if (!PEERS.has(name)) problems.push(`${f}: imports "${s}", which is not a peer dependency`)
      }
    }
  }
  if (packInfo.unpackedSize > 64 * 1024) problems.push(`unpacked size ${packInfo.unpackedSize} B (> 64 KiB: something extra got in?)`)
  return problems
}

// The syntax of dist/*.js must run unchanged on what `engines` and the README promise:
// esbuild lowers nothing for these targets (it would change the code, or fail, if it had to).
export const SYNTAX_TARGETS = ['node18', 'chrome94', 'edge94', 'firefox93', 'safari15']
export async function checkSyntax(dir, files) {
  const { transform } = await import('esbuild')
  const problems = []
  for (const f of files.filter((f) => f.endsWith('.js'))) {
    const code = readFileSync(join(dir, f), 'utf8')
    const same = (await transform(code, { format: 'esm', target: 'esnext' })).code
    let lowered
    try {
      lowered = (await transform(code, { format: 'esm', target: SYNTAX_TARGETS })).code
    } catch (e) {
      lowered = e.message
    }
    if (lowered !== same) problems.push(`${f} uses syntax newer than ${SYNTAX_TARGETS.join(', ')}`)
  }
  return problems
}

export function printFiles(packInfo) {
  for (const f of packInfo.files) console.log(`  ${String(f.size).padStart(6)} B  ${f.path}`)
  console.log(`  ${packInfo.entryCount} files, ${packInfo.size} B packed, ${packInfo.unpackedSize} B unpacked`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..')
  const out = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  const [info] = JSON.parse(out)
  if (!existsSync(join(root, 'dist'))) throw new Error('npm pack did not build dist/ (prepare)')
  console.log(`npm pack --dry-run: ${info.filename}`)
  printFiles(info)
  const problems = [...checkPack(info, root), ...(await checkSyntax(root, info.files.map((f) => f.path)))]
  if (problems.length) {
    console.error(`\npackage check FAILED:\n  ${problems.join('\n  ')}`)
    process.exit(1)
  }
  console.log(`package check passed (syntax runs on ${SYNTAX_TARGETS.join(', ')})`)
}
