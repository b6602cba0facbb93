// Bundle the end-to-end demo page (e2e/demo.tsx + React, production build) into e2e-dist/.
// The pytest e2e test serves e2e-dist/index.html for /demo/* and app.js at /demo-assets/app.js.
import { build } from 'esbuild'
import { copyFileSync, mkdirSync, rmSync } from 'node:fs'

rmSync('e2e-dist', { recursive: true, force: true })
mkdirSync('e2e-dist')
await build({
  entryPoints: ['e2e/demo.tsx'],
  outfile: 'e2e-dist/app.js',
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  minify: true,
  keepNames: true, // component_name in error reports stays readable
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
})
copyFileSync('e2e/index.html', 'e2e-dist/index.html')
console.log('built e2e-dist/ (index.html, app.js)')
