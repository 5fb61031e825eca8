// The GPU this machine trains on: what it is in plain words (a processor standing in for a GPU says
// so), whether it can take part and with how many layers, its measured speed; WebGPU's own features
// and limits behind a disclosure, for whoever asks.
import type { AdapterKind, GpuReport } from '../../shared/engine/gpu-detect.js';
import type { Verdict } from '../../shared/engine/gpu-verdict.js';
import { bytes } from '../../shared/base/sizes.js';
import { Card, Empty, Stat } from '../components.js';
import { count } from '../format.js';
import { useDashboard } from '../store.js';

/** The limits that decide what a peer can hold, in words, and whether each counts bytes. */
const LIMITS: Record<string, { words: string; isBytes: boolean }> = {
  maxStorageBufferBindingSize: { words: 'Largest tensor a kernel can read', isBytes: true },
  maxBufferSize: { words: 'Largest buffer', isBytes: true },
  maxComputeWorkgroupStorageSize: { words: 'Shared memory per workgroup', isBytes: true },
  maxComputeInvocationsPerWorkgroup: { words: 'Threads per workgroup', isBytes: false },
  maxComputeWorkgroupSizeX: { words: 'Workgroup width', isBytes: false },
};

const KIND: Record<AdapterKind, string> = {
  cpu: 'the processor (no GPU)',
  integrated: 'integrated GPU (shares the system memory)',
  discrete: 'graphics card',
  unknown: 'GPU of an unknown kind',
};

/** The verdict's headline: a processor that stands in for a GPU is accepted, but never shown as a GPU. */
function headline(verdict: Verdict, kind: AdapterKind | undefined): { mark: string; className: string; text: string } {
  if (!verdict.ok) return { mark: '✖', className: 'bad', text: `This machine cannot train: ${verdict.text.replace(/^rejected because /, '')}.` };
  if (kind === 'cpu')
    return {
      mark: '⚠',
      className: 'warn',
      text: `No GPU found: WebGPU runs on this machine's processor, many times slower than a graphics card. It ${verdict.text.replace(/^can /, 'can still ')}, slowly.`,
    };
  return { mark: '✔', className: 'ok', text: `Ready to train: it ${verdict.text}.` };
}

const known = (v: string | undefined) => v || '–';

function Adapter({ report }: { report: GpuReport }) {
  const a = report.adapter;
  return (
    <Card title="Adapter" id="adapter">
      <p data-testid="adapter">{report.message}</p>
      <div className="stats">
        <Stat label="What it is" value={a ? KIND[a.kind] : '–'} />
        <Stat label="Device" value={known(a?.description || a?.device)} hint="– : the browser does not say" />
        <Stat label="Vendor" value={known(a?.vendor)} hint="– : the browser does not say" />
        <Stat label="Memory budget" value={bytes(report.budget.bytes)} hint={report.budget.basis} />
      </div>
    </Card>
  );
}

function Details({ report, verdict }: { report: GpuReport; verdict: Verdict }) {
  return (
    <details>
      <summary>Technical details: the verdict's reasons, WebGPU features and limits</summary>
      <ul>
        {verdict.reasons.map((r) => (
          <li key={r}>{r}</li>
        ))}
      </ul>
      <ul className="chips" aria-label="features">
        {report.features.all.map((f) => (
          <li key={f}>{f}</li>
        ))}
      </ul>
      <table>
        <tbody>
          {Object.entries(LIMITS)
            .filter(([k]) => k in report.limits)
            .map(([k, { words, isBytes }]) => (
              <tr key={k}>
                <th scope="row" title={k}>
                  {words}
                </th>
                <td>{isBytes ? bytes(report.limits[k]) : count(report.limits[k])}</td>
              </tr>
            ))}
        </tbody>
      </table>
    </details>
  );
}

export function GpuPage() {
  const gpu = useDashboard((s) => s.training.gpu);
  if (!gpu) return <Empty>Detecting the GPU and measuring it (a few seconds)…</Empty>;
  const { report, verdict } = gpu;
  const h = headline(verdict, report.adapter?.kind);
  return (
    <>
      <Card title="Verdict" id="verdict">
        <p className={h.className} data-testid="verdict">
          {h.mark} {h.text}
        </p>
        {verdict.warnings.map((w) => (
          <p key={w} className="warn">
            ⚠ {w}
          </p>
        ))}
        <div className="stats">
          <Stat label="Layers it can hold" value={verdict.layers} />
        </div>
      </Card>
      <Adapter report={report} />
      <Card title="Speed" id="bench">
        {report.bench ? (
          <div className="stats">
            <Stat
              label="Matrix multiply"
              value={`${report.bench.matmulGflops.toFixed(2)} GFLOP/s`}
              hint={`${report.bench.matmulSize}³, best variant: ${report.bench.matmulVariant}`}
            />
            <Stat label="Memory bandwidth" value={`${report.bench.bandwidthGBs.toFixed(2)} GB/s`} />
            <Stat label="Measured in" value={`${(report.bench.ms / 1000).toFixed(1)} s`} />
          </div>
        ) : (
          <Empty>{report.benchError ?? 'Not measured.'}</Empty>
        )}
        <Details report={report} verdict={verdict} />
      </Card>
    </>
  );
}
