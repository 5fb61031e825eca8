// How an elementwise-style kernel is declared, written once: most kernels of a GPT block run one
// invocation per output element (or row, or column) on a flat grid, bind a few storage buffers and
// a small uniform block, and differ only in their body. Declaring the bindings and the uniform from
// one list keeps each kernel's WGSL, its bind group and its uniform words in the same order.
import { type Dispatch, type Gpu, type View, f32bits, groups } from './context.js';

export const WG = 256;

/** A 2-D grid of 256-wide workgroups covering `total` invocations, and the row stride. */
export function flat(total: number): { wg: [number, number, number]; stride: number } {
  const n = groups(total, WG);
  const x = Math.min(n, 65535);
  return { wg: [x, groups(n, x), 1], stride: x * WG };
}

export function need(label: string, v: View, n: number): void {
  if (v.length < n) throw new Error(`${label}: buffer holds ${v.length} values, needs ${n}`);
}

/** A storage buffer as the kernel names it: read-only input, or an output it writes (or updates). */
interface Binding {
  name: string;
  view: View;
  access: 'read' | 'read_write';
  type: 'f32' | 'u32';
}

export const input = (name: string, view: View, type: Binding['type'] = 'f32'): Binding => ({ name, view, access: 'read', type });
export const output = (name: string, view: View): Binding => ({ name, view, access: 'read_write', type: 'f32' });

/** `var` declarations of `buffers` at @binding(0..n-1) of group 0, then the uniform block `u` at @binding(n). */
export function declare(buffers: Binding[]): string {
  const storage = buffers.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`);
  return [...storage, `@group(0) @binding(${buffers.length}) var<uniform> u: U;`].join('\n');
}

/** One uniform word, typed for the WGSL struct (f32 values travel bit-cast). */
interface Word {
  type: 'u32' | 'f32';
  value: number;
}
export const u32 = (value: number): Word => ({ type: 'u32', value });
export const f32 = (value: number): Word => ({ type: 'f32', value });

/**
 * The uniform fields after the grid's stride and total: values known when the kernel is built, or
 * fields whose words the caller rewrites in its own buffer (the optimizer's per-step scalars).
 */
type Uniform = Record<string, Word> | GivenUniform;
interface GivenUniform {
  fields: string;
  buffer: GPUBuffer;
}
const isGiven = (u: Uniform | undefined): u is GivenUniform => typeof u?.fields === 'string';

interface FlatKernel {
  buffers: Binding[];
  uniform?: Uniform;
  /** WGSL statements with `idx` in range and the uniform block as `u`. */
  body: string;
}

/** A kernel of one invocation per index `idx` in [0, total) on the flat grid, bound and ready to encode. */
export function flatKernel(gpu: Gpu, label: string, total: number, k: FlatKernel): Dispatch {
  const g = flat(total);
  const given = isGiven(k.uniform) ? k.uniform : undefined;
  const words = given ? [] : Object.entries((k.uniform ?? {}) as Record<string, Word>);
  const fields = given ? given.fields : words.map(([name, w]) => `${name}: ${w.type}`).join(', ');
  const code = `
struct U { stride: u32, total: u32${fields ? `, ${fields}` : ''} }
${declare(k.buffers)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.y * u.stride + gid.x; if (idx >= u.total) { return; }
${k.body}
}`;
  const uniform = given?.buffer ?? gpu.uniform([g.stride, total, ...words.map(([, w]) => (w.type === 'f32' ? f32bits(w.value) : w.value))]);
  return gpu.dispatch(label, code, [...k.buffers.map((b) => b.view), uniform], g.wg);
}
