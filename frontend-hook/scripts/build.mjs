// Build dist/: ESM JavaScript (esbuild, React external) and .d.ts types (tsc).
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
  sourcemap: true,
  logLevel: 'warning',
})
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
console.log('built dist/ (index.js, tracker.js, *.d.ts)')
