// The small layer every kernel dispatcher stands on: a device, cached pipelines, buffers,
// and pre-built dispatches that are encoded many times without rebuilding bind groups.

/** A slice of a GPU buffer, in f32 elements. Offsets must be multiples of ALIGN_FLOATS. */
export interface View {
  buffer: GPUBuffer;
  offset: number;
  length: number;
}

/** WebGPU's minStorageBufferOffsetAlignment is at most 256 bytes on every adapter. */
export const ALIGN_FLOATS = 64;
export const alignFloats = (n: number) => Math.ceil(n / ALIGN_FLOATS) * ALIGN_FLOATS;

/** A compute dispatch with everything bound: encode it as often as needed. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

export const STORAGE_USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC
const UNIFORM_USAGE = 0x40 | 0x08; // UNIFORM | COPY_DST
const READBACK_USAGE = 0x01 | 0x08; // MAP_READ | COPY_DST
const MAP_READ = 0x01;

export class Gpu {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly errors: string[] = [];

  constructor(readonly device: GPUDevice) {
    // WebGPU reports invalid shaders and dispatches asynchronously and otherwise silently drops
    // the work; collect them so the next sync point (read, finish) throws instead.
    device.addEventListener('uncapturederror', (e) => this.errors.push((e as GPUUncapturedErrorEvent).error.message));
  }

  private check(): void {
    if (this.errors.length) {
      const first = this.errors[0];
      const more = this.errors.length - 1;
      this.errors.length = 0;
      throw new Error(`WebGPU error: ${first}${more ? ` (and ${more} more)` : ''}`);
    }
  }

  pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  /** A storage buffer of `length` f32 (rounded up to the binding alignment), zero-filled. */
  buffer(length: number, label = 'buffer'): GPUBuffer {
    return this.device.createBuffer({ label, size: Math.max(4, alignFloats(length)) * 4, usage: STORAGE_USAGE });
  }

  view(buffer: GPUBuffer, offset = 0, length = buffer.size / 4 - offset): View {
    if (offset % ALIGN_FLOATS !== 0) throw new Error(`view offset ${offset} is not a multiple of ${ALIGN_FLOATS} floats`);
    if (offset + length > buffer.size / 4) throw new Error(`view [${offset}, ${offset + length}) exceeds buffer of ${buffer.size / 4} floats`);
    return { buffer, offset, length };
  }

  /** A fresh buffer holding `data`. */
  upload(data: Float32Array | Uint32Array | Int32Array, label = 'upload'): View {
    const buffer = this.buffer(data.length, label);
    this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return { buffer, offset: 0, length: data.length };
  }

  write(view: View, data: Float32Array | Uint32Array | Int32Array): void {
    if (data.length > view.length) throw new Error(`write of ${data.length} values into a view of ${view.length}`);
    this.device.queue.writeBuffer(view.buffer, view.offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /** A uniform buffer of u32 words (f32 values are passed bit-cast by the caller). */
  uniform(words: ArrayLike<number>, label = 'uniform'): GPUBuffer {
    const data = new Uint32Array(Math.ceil(Math.max(words.length, 4) / 4) * 4);
    data.set(Array.from(words));
    const buffer = this.device.createBuffer({ label, size: data.byteLength, usage: UNIFORM_USAGE });
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** Bind `bindings` in order to @binding(0..n) of group 0 of `code`'s pipeline. */
  dispatch(label: string, code: string, bindings: (View | GPUBuffer)[], workgroups: [number, number, number]): Dispatch {
    const pipeline = this.pipeline(code);
    const entries = bindings.map((b, binding) =>
      'buffer' in b
        ? { binding, resource: { buffer: b.buffer, offset: b.offset * 4, size: Math.min(b.buffer.size - b.offset * 4, Math.ceil(Math.max(4, b.length * 4) / 16) * 16) } }
        : { binding, resource: { buffer: b } },
    );
    const bindGroup = this.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
    const limit = this.device.limits.maxComputeWorkgroupsPerDimension;
    for (const w of workgroups) {
      if (w > limit) throw new Error(`${label}: ${w} workgroups exceed the adapter limit ${limit}`);
    }
    return { label, pipeline, bindGroup, workgroups };
  }

  /** Encode dispatches into one compute pass; each dispatch sees the previous one's writes. */
  encode(encoder: GPUCommandEncoder, dispatches: Dispatch[]): void {
    const pass = encoder.beginComputePass();
    for (const d of dispatches) {
      if (d.workgroups[0] * d.workgroups[1] * d.workgroups[2] === 0) continue;
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(...d.workgroups);
    }
    pass.end();
  }

  /** Run dispatches in one command encoder and submit. */
  run(dispatches: Dispatch[]): void {
    const encoder = this.device.createCommandEncoder();
    this.encode(encoder, dispatches);
    this.device.queue.submit([encoder.finish()]);
  }

  /** Copy a view back to the CPU. */
  async read(view: View, length = view.length): Promise<Float32Array> {
    const bytes = Math.ceil((length * 4) / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: READBACK_USAGE });
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(view.buffer, view.offset * 4, staging, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    this.check();
    return out;
  }

  /** Median wall-clock milliseconds of running `dispatches`, after one warm-up run. */
  async time(dispatches: Dispatch[], reps = 3): Promise<number> {
    this.run(dispatches);
    await this.finish();
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      this.run(dispatches);
      await this.finish();
      times.push(performance.now() - t0);
    }
    return times.sort((x, y) => x - y)[Math.floor(times.length / 2)];
  }

  /** Resolves when everything submitted so far has finished. */
  async finish(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }
}

/** Bit-cast an f32 so it can travel in a u32 uniform word. */
export function f32bits(x: number): number {
  const f = new Float32Array([x]);
  return new Uint32Array(f.buffer)[0];
}

/** Workgroup count covering `n` items with groups of `size`. */
export const groups = (n: number, size: number) => Math.ceil(n / size);
