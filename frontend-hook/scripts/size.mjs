// Print the minified + gzipped size of what an app ships: the tracker alone,
// and the full package entry (tracker + hook + error boundary). React is a peer, not counted.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'

const LIMIT = 2048
const measure = async (label, contents) => {
  const r = await build({
    stdin: { contents, resolveDir: process.cwd(), loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    external: ['react'],
    write: false,
  })
  const code = r.outputFiles[0].contents
  const gz = gzipSync(code, { level: 9 }).length
  console.log(`${label.padEnd(40)} ${String(code.length).padStart(6)} B min  ${String(gz).padStart(5)} B min+gzip`)
  return gz
}

await measure('tracker (createTracker)', "export { createTracker } from './src/tracker'")
const hook = await measure('tracker + hook (useActivityTracking)', "export { createTracker } from './src/tracker'; export { useActivityTracking } from './src/hook'")
const all = await measure('everything (+ ActivityErrorBoundary)', "export * from './src/index'")
console.log(`\ntracker + hook: ${(hook / 1024).toFixed(2)} KiB min+gzip (goal <= 2 KiB: ${hook <= LIMIT ? 'met' : 'NOT met'}); whole package ${(all / 1024).toFixed(2)} KiB`)
