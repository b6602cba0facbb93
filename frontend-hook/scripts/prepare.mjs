// `prepare`: build dist/ so that this directory can be installed and packed from a fresh clone.
//
// npm runs `prepare` after `npm install` / `npm ci` here, before `npm pack` / `npm publish`,
// and when another project installs this directory (`npm install --install-links <path>`).
// In that last case, and for `npm pack` on a fresh clone, node_modules/ may not exist yet:
// then the build tools (this package's devDependencies, as pinned by package-lock.json) are
// installed first with `npm ci --ignore-scripts` (no recursion into this script).
//
// A plain `npm install <path>` (npm >= 9: install-links=false) does not copy this directory: it
// symlinks it into the app's node_modules. Node and bundlers then resolve `react` from the
// symlink's real location, i.e. from this directory's node_modules, so the app runs two copies
// of React and every hook fails with "Invalid hook call". No package.json setting can change
// that, so such an install stops here with the commands that work.
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const major = Number(process.versions.node.split('.')[0])
if (major < 18) {
  console.error(`@waymark/react-hook: building needs Node >= 18 (esbuild, tsc), this is ${process.version}.`)
  console.error('Install a tarball made with `npm pack` instead: it needs no build.')
  process.exit(1)
}

const host = process.env.npm_config_local_prefix // the project npm is installing into
if (host && resolve(host) !== resolve(root) && process.env.npm_config_install_links !== 'true'
    && process.env.WAYMARK_ALLOW_LINKED_INSTALL !== '1') {
  const { name } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const entry = join(host, 'node_modules', ...name.split('/'))
  let linked = false
  try {
    linked = lstatSync(entry).isSymbolicLink() && realpathSync(entry) === realpathSync(root)
  } catch {}
  if (linked) {
    console.error([
      `${name}: npm symlinked ${entry} -> ${root}`,
      'instead of copying the package. Code in a linked package resolves `react` from the',
      "package's own folder, not from your app, so the app would run two copies of React",
      '("Invalid hook call"). Install a copy instead:',
      '',
      `    npm install --install-links ${root}`,
      "    (or put install-links=true in your app's .npmrc; then `npm install <path>` copies)",
      '',
      `or a tarball: run \`npm pack\` in ${root} and \`npm install <the .tgz it names>\`.`,
      'If your bundler already dedupes React (e.g. Vite resolve.dedupe), set',
      'WAYMARK_ALLOW_LINKED_INSTALL=1 to keep the link.',
    ].join('\n'))
    process.exit(1)
  }
}

const tools = ['esbuild', 'typescript', '@types/react']
if (!tools.every((t) => existsSync(join(root, 'node_modules', t, 'package.json')))) {
  console.error('@waymark/react-hook: installing the build tools (npm ci --ignore-scripts) ...')
  // The outer npm's settings reach us as npm_config_* variables (e.g. install_links, global,
  // save, omit=dev from a production install); none of them is meant for this inner install.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_config_(?!registry$|cache$|userconfig$|globalconfig$|proxy$|https_proxy$|noproxy$|strict_ssl$|cafile$|ca$)/i.test(k)),
  )
  const npm = process.env.npm_execpath
  const [cmd, pre] = npm && npm.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []]
  execFileSync(cmd, [...pre, 'ci', '--ignore-scripts', '--no-audit', '--no-fund', '--include=dev'], {
    cwd: root,
    env,
    stdio: ['ignore', 2, 2], // stdout stays clean for `npm pack --json`
    shell: process.platform === 'win32' && cmd === 'npm',
  })
}
execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: ['ignore', 2, 2] })
