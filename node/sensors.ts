// What the policies need to know about the machine that only the OS's own tools tell: which
// processes run, and each NVIDIA GPU's temperature, power draw and compute processes. Node-only:
// the desktop app's main process reads them, and so does the local server that serves a tab its
// /machine. Reading must never take the app down: a missing tool, a timeout or output we do not
// understand leaves a field unknown, and the policies treat unknown as "do not pause".
import { execFile } from 'node:child_process';
import type { GpuSensor } from '../shared/policy/types.js';

const TIMEOUT_MS = 3000;
const MAX_OUTPUT = 16 * 1024 * 1024;

/** The tool's stdout; none when it is missing (ENOENT), fails or takes longer than 3 s. */
function run(cmd: string, args: string[]): Promise<{ stdout?: string; missing: boolean }> {
  return new Promise((resolve) => {
    try {
      execFile(cmd, args, { timeout: TIMEOUT_MS, maxBuffer: MAX_OUTPUT, windowsHide: true, encoding: 'utf8' }, (error, stdout) => {
        const code = (error as NodeJS.ErrnoException | null)?.code;
        resolve(error ? { missing: code === 'ENOENT' } : { stdout, missing: false });
      });
    } catch {
      resolve({ missing: false });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Parsers (pure)

/** One CSV record; quoted fields may hold commas ("12,345 K") and doubled quotes. */
export function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted && c === '"' && line[i + 1] === '"') {
      field += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (c === ',' && !quoted) {
      fields.push(field);
      field = '';
    } else {
      field += c;
    }
  }
  fields.push(field);
  return fields;
}

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}

/**
 * Process names from `ps -A -o comm=` (Linux, macOS) or `tasklist /fo csv /nh` (Windows), without
 * duplicates. macOS prints whole paths, reduced to the executable's name; Linux names stay as they
 * are (a kernel thread's "kworker/0:1" is a name, not a path).
 */
export function parseProcessList(stdout: string, platform: NodeJS.Platform): string[] {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim());
  // tasklist prints an "INFO: ..." line instead of rows when nothing matches; rows start with a quote.
  const windows = () => lines.filter((l) => l.startsWith('"')).map((l) => parseCsvLine(l)[0]);
  const names = platform === 'win32' ? windows() : platform === 'darwin' ? lines.map(baseName) : lines;
  return [...new Set(names.filter((n) => n.length > 0))];
}

// nvidia-smi writes "[N/A]", "[Not Supported]" or "[Unknown Error]" where a GPU cannot tell.
function reading(field: string | undefined): number | undefined {
  if (field === undefined || !/^-?\d+(\.\d+)?$/.test(field.trim())) return undefined;
  return Number(field);
}

const UUID = /^GPU-[0-9a-f-]+$/i;

interface GpuRow {
  sensor: GpuSensor;
  uuid?: string;
}

// `index,name,temperature.gpu,power.draw`, or with `uuid` after the index (which is what lets
// compute processes be matched to a GPU). Names may hold commas, so the numbers are taken from the end.
function parseGpuLine(line: string): GpuRow | undefined {
  const fields = line.split(',').map((f) => f.trim());
  const index = reading(fields[0]);
  if (fields.length < 4 || index === undefined) return undefined;
  const uuid = UUID.test(fields[1]) ? fields[1] : undefined;
  const name = fields.slice(uuid ? 2 : 1, -2).join(', ');
  const sensor: GpuSensor = { index, name: name || undefined, temperatureC: reading(fields.at(-2)), powerW: reading(fields.at(-1)) };
  return { sensor: dropUndefined(sensor), uuid };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** `gpu_uuid,process_name` rows → process names per GPU uuid; "[N/A]" and "[Insufficient Permissions]" names are skipped. */
function parseApps(appsCsv: string): Map<string, string[]> {
  const byGpu = new Map<string, string[]>();
  for (const line of appsCsv.split(/\r?\n/)) {
    const [uuid, ...rest] = line.split(',').map((f) => f.trim());
    const name = rest.join(',');
    if (!uuid || !name || name.startsWith('[')) continue;
    byGpu.set(uuid, [...(byGpu.get(uuid) ?? []), baseName(name)]);
  }
  return byGpu;
}

/**
 * GPUs from `nvidia-smi --query-gpu=index[,uuid],name,temperature.gpu,power.draw --format=csv,noheader,nounits`,
 * with their compute processes from `--query-compute-apps=gpu_uuid,process_name --format=csv,noheader`
 * when given (a GPU none are listed on gets []). Without uuids they can be placed only when there is a single GPU.
 */
export function parseNvidiaSmi(gpuCsv: string, appsCsv?: string): GpuSensor[] {
  const rows = gpuCsv
    .split(/\r?\n/)
    .map(parseGpuLine)
    .filter((r): r is GpuRow => r !== undefined);
  if (appsCsv === undefined) return rows.map((r) => r.sensor);
  const apps = parseApps(appsCsv);
  const all = [...apps.values()].flat();
  return rows.map(({ sensor, uuid }) => {
    const processes = uuid ? (apps.get(uuid) ?? []) : rows.length === 1 ? all : undefined;
    return processes ? { ...sensor, processes: [...new Set(processes)] } : sensor;
  });
}

// ---------------------------------------------------------------------------------------------
// The adapter

// A driver is not installed while the app runs: once nvidia-smi is known to be absent, polls stop spawning it.
let nvidiaSmiMissing = false;

/** The last list read, kept for a read that fails (a busy machine can make `ps` time out). */
let lastProcesses: { at: number; names: string[] } | undefined;
/** How long a failed read may stand on the last good one: a game seen must not vanish because `ps` was slow. */
const STALE_MS = 60_000;

async function readProcesses(): Promise<string[]> {
  const { stdout } = process.platform === 'win32' ? await run('tasklist', ['/fo', 'csv', '/nh']) : await run('ps', ['-A', '-o', 'comm=']);
  if (stdout !== undefined) {
    lastProcesses = { at: Date.now(), names: parseProcessList(stdout, process.platform) };
    return lastProcesses.names;
  }
  return lastProcesses && Date.now() - lastProcesses.at < STALE_MS ? lastProcesses.names : [];
}

async function readGpus(): Promise<GpuSensor[]> {
  if (nvidiaSmiMissing) return [];
  const gpus = await run('nvidia-smi', ['--query-gpu=index,uuid,name,temperature.gpu,power.draw', '--format=csv,noheader,nounits']);
  if (gpus.missing) nvidiaSmiMissing = true;
  if (gpus.stdout === undefined) return [];
  const apps = await run('nvidia-smi', ['--query-compute-apps=gpu_uuid,process_name', '--format=csv,noheader']);
  return parseNvidiaSmi(gpus.stdout, apps.stdout);
}

/** Running processes and NVIDIA GPUs; never rejects (what cannot be read comes back empty). */
export async function readProcessesAndGpus(): Promise<{ processes: string[]; gpus: GpuSensor[] }> {
  const [processes, gpus] = await Promise.all([readProcesses().catch(() => []), readGpus().catch(() => [])]);
  return { processes, gpus };
}
