// One file through tus-js-client (Node), as the bench's tus client:
//   node bench/tus_upload.mjs ENDPOINT FILE [CHUNK_BYTES]
// Prints {"url": ..., "size": ...} on success (exit 0); the error on stderr otherwise (exit 1).
// The client's own defaults stay (retries, one request at a time) but for the chunk size, which
// the bench fixes (8 MiB): in Node an fs.ReadStream with a path is re-opened per chunk.
import { createReadStream, statSync } from "node:fs";
import { basename } from "node:path";
import { Upload } from "tus-js-client";

const [endpoint, file, chunkArg] = process.argv.slice(2);
if (!endpoint || !file) {
  console.error("usage: node tus_upload.mjs ENDPOINT FILE [CHUNK_BYTES]");
  process.exit(2);
}
const chunkSize = Number(chunkArg ?? 8 * 1024 * 1024);
const size = statSync(file).size;

const upload = new Upload(createReadStream(file), {
  endpoint,
  chunkSize,
  uploadSize: size,
  metadata: { filename: basename(file), filetype: "application/octet-stream" },
  onError(error) {
    console.error(`tus upload failed: ${error}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, size }));
  },
});
upload.start();
