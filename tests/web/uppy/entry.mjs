// Bundled by tests/web/test_uppy.py with esbuild from node_modules (@uppy/core + @uppy/tus,
// pinned in package.json): Uppy ships ES modules that import CommonJS, so a browser can't load
// them straight from node_modules.
import Uppy from "@uppy/core";
import Tus from "@uppy/tus";

window.Uppy = Uppy;
window.UppyTus = Tus;
