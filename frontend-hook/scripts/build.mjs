// Build dist/: ESM JavaScript (esbuild, React external) and .d.ts types (tsc).
// Run by `npm run build`, and by `prepare` (scripts/prepare.mjs) on install, pack and publish.
// No source maps: dist/ is not minified and reads like src/ without the types, so a map would
// only double the package. The JS targets ES2022 (browsers from 2021-22, Node >= 16.11).
import { build } from 'esbuild'
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'

rmSync('dist', { recursive: true, force: true })
await build({
  entryPoints: ['src/index.ts', 'src/tracker.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  external: ['react'],
  sourcemap: false,
  logLevel: 'warning',
})
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
console.log('built dist/ (index.js, tracker.js, *.d.ts)')
