// deepc wasm loader: `const model = await load(wasmBytes, paramsBytes)`, then
// `model.run({name: TypedArray}) -> {name: TypedArray}`. The packager puts `const SPEC`
// (inputs, outputs, workspace and params sizes, from the manifest) above this text.
// Params, workspace, inputs and outputs are placed once in the module's linear memory.

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array,
};

const count = (t) => t.shape.reduce((a, b) => a * b, 1);
const arrayType = (t) => ARRAYS[t.dtype];

export const spec = SPEC;

// a fixed input the example page and `deepc run` can both make: values in [-1, 1), or
// integers below the input's bound (the manifest's input_bounds, else 10)
export function exampleInputs() {
  return Object.fromEntries(SPEC.inputs.map((t) => {
    const A = arrayType(t);
    const a = new A(count(t));
    const bound = t.dtype === "bool" ? 2 : (SPEC.input_bounds[t.name] ?? 10);
    for (let i = 0; i < a.length; i++) {
      const h = (i * 7919) % 1000;
      if (t.dtype.startsWith("float")) a[i] = h / 500 - 1;
      else a[i] = A === BigInt64Array || A === BigUint64Array ? BigInt(h % bound) : h % bound;
    }
    return [t.name, a];
  }));
}

export async function load(wasmBytes, paramsBytes) {
  const { instance } = await WebAssembly.instantiate(wasmBytes, {});
  const x = instance.exports;
  const alloc = (n) => {
    const p = x.deepc_alloc(Math.max(n, 1));
    if (!p) throw new Error(`deepc: cannot grow the wasm memory by ${n} bytes`);
    return p;
  };
  const bytes = (p, n) => new Uint8Array(x.memory.buffer, p, n);
  const params = alloc(paramsBytes.byteLength);
  bytes(params, paramsBytes.byteLength).set(new Uint8Array(paramsBytes.buffer ?? paramsBytes,
    paramsBytes.byteOffset ?? 0, paramsBytes.byteLength));
  const workspace = alloc(SPEC.workspace_bytes);
  const place = (t) => alloc(count(t) * arrayType(t).BYTES_PER_ELEMENT);
  const ins = SPEC.inputs.map(place);
  const outs = SPEC.outputs.map(place);
  const table = (ptrs) => {
    const p = alloc(4 * Math.max(ptrs.length, 1));
    new Uint32Array(x.memory.buffer, p, ptrs.length).set(ptrs);
    return p;
  };
  const inTable = table(ins);
  const outTable = table(outs);
  // views are made after each call: growing the memory detaches the old buffer
  const view = (t, p) => new (arrayType(t))(x.memory.buffer, p, count(t));

  function run(feeds) {
    SPEC.inputs.forEach((t, k) => {
      const a = feeds[t.name];
      if (!(a instanceof arrayType(t)) || a.length !== count(t)) {
        throw new Error(`deepc: input ${t.name} must be a ${arrayType(t).name} of`
          + ` ${count(t)} elements (shape ${t.shape.join("x")})`);
      }
      view(t, ins[k]).set(a);
    });
    const rc = x.deepc_run(inTable, outTable, params, workspace);
    if (rc !== 0) throw new Error(`deepc: deepc_run returned ${rc}`);
    return Object.fromEntries(SPEC.outputs.map((t, k) => [t.name, view(t, outs[k]).slice()]));
  }

  return { inputs: SPEC.inputs, outputs: SPEC.outputs, run };
}
