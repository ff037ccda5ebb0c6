// The tus project's own Node server with its file store, as the bench's tus peer:
//   node bench/tus_server.mjs PORT DIRECTORY
// Listens on 127.0.0.1:PORT, tus endpoint /files/; each upload lands in DIRECTORY/<upload id>
// (its metadata next to it in <upload id>.json). Defaults otherwise.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node tus_server.mjs PORT DIRECTORY");
  process.exit(2);
}
const server = new Server({ path: "/files", datastore: new FileStore({ directory }) });
server.listen({ host: "127.0.0.1", port: Number(port) });
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
