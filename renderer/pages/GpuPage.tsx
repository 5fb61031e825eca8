// The GPU this machine trains on: adapter, features, limits, benchmark, and the verdict with its reasons.
import { Card, Empty, Stat } from '../components.js';
import { bytes } from '../../shared/base/sizes.js';
import { useDashboard } from '../store.js';

const LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX'];

export function GpuPage() {
  const gpu = useDashboard((s) => s.training.gpu);
  if (!gpu) return <Empty>Detecting the GPU and measuring it (a few seconds)…</Empty>;
  const { report, verdict } = gpu;
  const a = report.adapter;
  return (
    <>
      <Card title="Verdict" id="verdict">
        <p className={verdict.ok ? 'ok' : 'bad'} data-testid="verdict">
          {verdict.ok ? '✔ ' : '✖ '}
          {verdict.text}
        </p>
        {verdict.reasons.length > 0 && (
          <ul>
            {verdict.reasons.map((r) => (
              <li key={r}>{r}</li>
            ))}
          </ul>
        )}
        {verdict.warnings.map((w) => (
          <p key={w} className="warn">
            ⚠ {w}
          </p>
        ))}
        <div className="stats">
          <Stat label="Layers it can hold" value={verdict.layers} />
          <Stat label="Memory budget" value={bytes(report.budget.bytes)} hint={report.budget.basis} />
        </div>
      </Card>
      <Card title="Adapter" id="adapter">
        <p data-testid="adapter">{report.message}</p>
        <div className="stats">
          <Stat label="Device" value={a?.description || a?.device || 'unknown'} />
          <Stat label="Vendor" value={a?.vendor || 'unknown'} />
          <Stat label="Architecture" value={a?.architecture || 'unknown'} />
          <Stat label="Kind" value={a?.kind ?? 'unknown'} />
        </div>
      </Card>
      <Card title="Benchmark" id="bench">
        {report.bench ? (
          <div className="stats">
            <Stat label={`Matmul ${report.bench.matmulSize}³`} value={`${report.bench.matmulGflops.toFixed(2)} GFLOP/s`} hint={`best variant: ${report.bench.matmulVariant}`} />
            <Stat label="Memory bandwidth" value={`${report.bench.bandwidthGBs.toFixed(2)} GB/s`} />
            <Stat label="Took" value={`${(report.bench.ms / 1000).toFixed(1)} s`} />
          </div>
        ) : (
          <Empty>{report.benchError ?? 'not measured'}</Empty>
        )}
      </Card>
      <Card title="Features and limits" id="limits">
        <ul className="chips" aria-label="features">
          {report.features.all.map((f) => (
            <li key={f}>{f}</li>
          ))}
        </ul>
        <table>
          <tbody>
            {LIMITS.filter((k) => k in report.limits).map((k) => (
              <tr key={k}>
                <th scope="row">{k}</th>
                <td>{report.limits[k].toLocaleString('en-US')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
    </>
  );
}
