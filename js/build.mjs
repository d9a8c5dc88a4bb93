// Builds one self-contained ESM bundle per widget: js/src/<widget>.js -> p2p_widgets/static/<widget>.js
// (plus <widget>.css when the entry imports CSS).
//
//   node build.mjs                 build into p2p_widgets/static (the committed bundles)
//   node build.mjs --outdir DIR    build somewhere else (the pytest staleness test does this)
//   node build.mjs --check         build in memory, exit 1 if the committed bundles differ
//   node build.mjs --watch         rebuild on change, with inline source maps (development only)
//
// The output must be byte-for-byte reproducible: fixed target, no source maps outside --watch,
// paths relative to this folder, entries in sorted order.
import * as esbuild from "esbuild";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const committedDir = path.resolve(here, "..", "p2p_widgets", "static");

function parseArgs(argv) {
  const opts = { outdir: committedDir, check: false, watch: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--check") opts.check = true;
    else if (arg === "--watch") opts.watch = true;
    else if (arg === "--outdir") opts.outdir = path.resolve(argv[++i] ?? "");
    else if (arg.startsWith("--outdir=")) opts.outdir = path.resolve(arg.slice("--outdir=".length));
    else throw new Error(`unknown argument: ${arg}`);
  }
  return opts;
}

const entryPoints = readdirSync(path.join(here, "src"))
  .filter((name) => name.endsWith(".js"))
  .sort()
  .map((name) => `src/${name}`);

/** @type {import("esbuild").BuildOptions} */
const shared = {
  absWorkingDir: here,
  entryPoints,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
};

const opts = parseArgs(process.argv.slice(2));

if (opts.watch) {
  const ctx = await esbuild.context({ ...shared, outdir: opts.outdir, sourcemap: "inline" });
  await ctx.watch();
  console.log(`watching js/src and js/lib -> ${path.relative(process.cwd(), opts.outdir)}`);
} else if (opts.check) {
  const result = await esbuild.build({ ...shared, outdir: committedDir, write: false });
  const expected = new Set();
  const stale = [];
  for (const file of result.outputFiles) {
    expected.add(path.basename(file.path));
    const onDisk = existsSync(file.path) ? readFileSync(file.path) : null;
    if (!onDisk || Buffer.compare(onDisk, Buffer.from(file.contents)) !== 0) stale.push(path.basename(file.path));
  }
  const extra = existsSync(committedDir)
    ? readdirSync(committedDir).filter((n) => /\.(js|css)$/.test(n) && !expected.has(n))
    : [];
  if (stale.length || extra.length) {
    if (stale.length) console.error(`stale or missing bundles in p2p_widgets/static: ${stale.join(", ")}`);
    if (extra.length) console.error(`bundles without a source in js/src: ${extra.join(", ")}`);
    console.error("run `npm run build` in js/ and commit p2p_widgets/static");
    process.exit(1);
  }
  console.log(`bundles up to date: ${[...expected].sort().join(", ")}`);
} else {
  const result = await esbuild.build({ ...shared, outdir: opts.outdir, metafile: true });
  for (const [out, info] of Object.entries(result.metafile.outputs).sort()) {
    console.log(`${out}  ${(info.bytes / 1024).toFixed(1)} KiB`);
  }
}
