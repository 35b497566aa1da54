// deepc's Node driver for wasm bundles: runs an extracted bundle on raw input files (or its
// example input), writes raw outputs and prints each timed run; with --peer, onnxruntime-web
// (its wasm backend, one thread) runs the ONNX file interleaved with deepc on the same inputs.
//   node driver.mjs BUNDLE_DIR [--runs N] [--warmup W] (--in FILE... | --example)
//        [--out FILE...] [--peer NPM_DIR --onnx MODEL.onnx [--peer-out FILE...]]
// stdout: one line of JSON, {"deepc": [ms...], "peer": [ms...] | null}
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "1" }, warmup: { type: "string", default: "0" },
    in: { type: "string", multiple: true, default: [] }, example: { type: "boolean" },
    out: { type: "string", multiple: true, default: [] },
    peer: { type: "string" }, onnx: { type: "string" },
    "peer-out": { type: "string", multiple: true, default: [] },
  },
});
const dir = positionals[0];
const url = (path) => pathToFileURL(path).href;
const { load, spec, exampleInputs } = await import(url(join(dir, "lib/model.mjs")));
const model = await load(readFileSync(join(dir, "lib/model.wasm")),
  readFileSync(join(dir, "params.bin")));
const empty = exampleInputs();  // typed arrays of the right types and lengths
const feeds = o.example ? empty : Object.fromEntries(spec.inputs.map((t, k) => {
  const raw = readFileSync(o.in[k]);
  const A = empty[t.name].constructor;
  return [t.name, new A(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))];
}));
const fns = [() => model.run(feeds)];
if (o.peer) {
  const ort = await import(url(join(o.peer, "node_modules/onnxruntime-web/dist/ort.node.min.mjs")));
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(o.onnx),
    { executionProviders: ["wasm"] });
  const ortFeeds = Object.fromEntries(spec.inputs.map((t) =>
    [t.name, new ort.Tensor(t.dtype, feeds[t.name], t.shape)]));
  fns.push(async () => {
    const out = await session.run(ortFeeds);
    return Object.fromEntries(spec.outputs.map((t) => [t.name, out[t.name].data]));
  });
}

const save = (outs, files) => spec.outputs.forEach((t, j) => {
  const a = outs[t.name];
  if (files[j]) writeFileSync(files[j], new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
});
const warmup = Number(o.warmup);
const runs = Math.max(Number(o.runs), 1);
const times = fns.map(() => []);
const last = [];
for (let r = 0; r < warmup + runs; r++) {
  for (let k = 0; k < fns.length; k++) {
    const start = performance.now();
    last[k] = await fns[k]();
    const ms = performance.now() - start;
    if (r >= warmup) times[k].push(ms);
  }
}
save(last[0], o.out);
if (o.peer) save(last[1], o["peer-out"]);
process.stdout.write(JSON.stringify({ deepc: times[0], peer: times[1] ?? null }) + "\n");
