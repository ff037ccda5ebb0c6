// tus-js-client (npm) under Node, run by test_tus_clients.py:
//   node tus_js_client.mjs ENDPOINT FILE PARALLEL CHUNK_SIZE COOKIE CHECKSUM [RETRY [UPLOAD_URL]]
// Uploads FILE with `parallelUploads: PARALLEL` (partial uploads joined by concatenation) and
// prints one JSON line with the upload URL and the server's X-Pyfiledrop-* answer headers.
// tus-js-client has no checksum option, so with CHECKSUM=sha1 an onBeforeRequest hook adds
// Upload-Checksum to every PATCH: the body is the file's slice at the part's start + Upload-Offset.
// RETRY `default` keeps tus-js-client's own retryDelays ([0, 1000, 3000, 5000]); UPLOAD_URL resumes
// an upload that exists already (as a client that stored its URL does after a crash).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, file, parallelText, chunkText, cookie, algorithm, retry, uploadUrl] =
  process.argv.slice(2)
const data = fs.readFileSync(file)
const parallel = Number(parallelText)
const chunkSize = Number(chunkText)

// Parts of distinct lengths, so each partial upload is known by its Upload-Length.
const base = Math.floor(data.length / parallel) - parallel
const boundaries = []
let start = 0
for (let i = 0; i < parallel; i++) {
  const end = i === parallel - 1 ? data.length : start + base + i
  boundaries.push({ start, end })
  start = end
}
const partByLength = new Map(boundaries.map((part) => [String(part.end - part.start), part]))
const partByUrl = new Map()
let answer = {}

const upload = new tus.Upload(data, {
  endpoint,
  chunkSize,
  parallelUploads: parallel,
  parallelUploadBoundaries: parallel > 1 ? boundaries : null,
  ...(retry === 'default' ? {} : { retryDelays: [100, 300, 1000] }),
  uploadUrl: uploadUrl || null,
  headers: cookie ? { Cookie: cookie } : {},
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  onBeforeRequest(req) {
    if (req.getMethod() !== 'PATCH' || !algorithm) return
    const part = parallel > 1 ? partByUrl.get(req.getURL()) : { start: 0, end: data.length }
    const offset = part.start + Number(req.getHeader('Upload-Offset'))
    const body = data.subarray(offset, Math.min(offset + chunkSize, part.end))
    const digest = crypto.createHash(algorithm).update(body).digest('base64')
    req.setHeader('Upload-Checksum', `${algorithm} ${digest}`)
  },
  onAfterResponse(req, res) {
    if (req.getMethod() === 'POST' && req.getHeader('Upload-Concat') === 'partial') {
      const location = new URL(res.getHeader('Location'), endpoint).toString()
      partByUrl.set(location, partByLength.get(req.getHeader('Upload-Length')))
    }
    const file = res.getHeader('X-Pyfiledrop-File')
    if (file) answer = { file, sha256: res.getHeader('X-Pyfiledrop-Sha256') }
  },
  onError(error) {
    console.error(String(error))
    process.exit(1)
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, ...answer, partials: partByUrl.size }))
  },
})
upload.start()
