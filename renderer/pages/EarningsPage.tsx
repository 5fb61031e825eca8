// What this account earned: verified risk-adjusted units per epoch, ownership share, what is left to
// claim, and a check of every saved proof against the root on chain (no trust in the coordinator).
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { type EpochCheck, claimOwnership, verifyProofs } from '../../shared/chain/owner.js';
import { POLL_MS, useHoldings } from '../chain-queries.js';
import { BarChart } from '../charts/Chart.js';
import { Card, Empty, Stat, TableHead } from '../components.js';
import { units } from '../format.js';
import { act, useDashboard } from '../store.js';
import { WalletBar } from '../wallet/WalletBar.js';
import { useWallet } from '../wallet/context.js';
import { type ProofFile, proofsKey, readProofFile } from '../../shared/ledger/proof-file.js';

/** The proofs this machine's peer saved for `account` (none until an epoch settles). */
function useProofs(account: string | undefined, runId: bigint | undefined) {
  const storage = useDashboard((s) => s.host?.storage);
  return useQuery({
    queryKey: ['proofs', account, runId?.toString()],
    enabled: !!storage && !!account && runId !== undefined,
    refetchInterval: POLL_MS,
    queryFn: async (): Promise<ProofFile | null> => {
      const raw = await storage!.get(proofsKey(account!, runId!.toString()));
      return raw ? readProofFile(raw, 'the saved proofs') : null;
    },
  });
}

function EpochChart({ proofs }: { proofs: ProofFile }) {
  const data = [...proofs.epochs]
    .sort((a, b) => a.epoch - b.epoch)
    .map((e, i, all) => ({ x: e.epoch, y: Number(BigInt(e.cumulative) - (i ? BigInt(all[i - 1].cumulative) : 0n)) }));
  return (
    <figure aria-label="verified units per epoch" data-testid="epoch-chart">
      <BarChart height={200} xLabel="epoch" yLabel="units" name="units earned" color="#6cf" bars={data} />
    </figure>
  );
}

function Verify({ proofs }: { proofs: ProofFile }) {
  const { reader, runId } = useWallet();
  const [checks, setChecks] = useState<EpochCheck[]>();
  const run = async () => setChecks(await act('verify', () => verifyProofs(reader!, runId!, proofs)));
  return (
    <>
      <button type="button" onClick={run}>
        Verify against the chain
      </button>
      {checks && (
        <table data-testid="verify-table">
          <TableHead columns={['Epoch', 'Units', 'Cumulative', 'Check']} />
          <tbody>
            {checks.map((c) => (
              <tr key={c.epoch} className={c.ok ? 'ok' : 'bad'}>
                <td>{c.epoch}</td>
                <td>{units(c.units)}</td>
                <td>{units(c.cumulative)}</td>
                <td>
                  {c.ok ? '✔ ' : '✖ '}
                  {c.detail}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {checks?.every((c) => c.ok) && <p className="ok">All {checks.length} saved epochs check out against the roots on chain.</p>}
    </>
  );
}

export function EarningsPage() {
  const { reader, chain, account, runId } = useWallet();
  const proofs = useProofs(account, runId);
  const h = useHoldings();
  const run = useQuery({ queryKey: ['run', runId?.toString()], enabled: !!reader, refetchInterval: POLL_MS, queryFn: () => reader!.run(runId!) });
  const p = proofs.data;
  const latest = p ? p.epochs.reduce((a, b) => (b.epoch > a.epoch ? b : a)) : undefined;
  const claimable = latest && h.data ? BigInt(latest.cumulative) - h.data.claimed : 0n;
  // No chain, no ownership: a "Connect a wallet" with nothing to connect to would only confuse.
  if (runId === undefined) return <Empty>This swarm settles on no chain: the work trained here earns no ownership.</Empty>;
  return (
    <>
      <WalletBar />
      {!account ? (
        <Empty>Connect a wallet to see what it earned.</Empty>
      ) : (
        <>
          <Card title={`Run ${runId}`} id="run">
            <div className="stats">
              <Stat label="Run state" value={run.data?.state ?? '…'} testId="run-state" />
              <Stat label="Epochs posted" value={run.data ? run.data.epochs.toString() : '…'} />
              <Stat
                label="Verified units (saved)"
                value={latest ? units(BigInt(latest.cumulative)) : '0'}
                hint="risk-adjusted MFLOPs, from the proofs this machine saved"
                testId="units-saved"
              />
              <Stat label="Ownership" value={h.data ? units(h.data.ownership) : '…'} testId="ownership" />
              <Stat label="Share" value={h.data ? `${h.data.share.toFixed(2)} %` : '…'} />
              <Stat label="Claimable" value={units(claimable > 0n ? claimable : 0n)} testId="claimable" />
            </div>
            <button
              type="button"
              disabled={!chain || !p || claimable <= 0n || run.data?.state !== 'trained'}
              onClick={() => act('claim', () => claimOwnership(chain!, runId, p!)).then(() => h.refetch())}
            >
              Claim ownership
            </button>
            {run.data?.state !== 'trained' && <p className="muted">Ownership is claimable once the run is trained.</p>}
          </Card>
          <Card title="Units per epoch" id="history">
            {p ? <EpochChart proofs={p} /> : <Empty>No epoch has settled for this account yet.</Empty>}
          </Card>
          <Card title="Verify" id="verify">
            {p ? <Verify proofs={p} /> : <Empty>Nothing to verify yet.</Empty>}
          </Card>
        </>
      )}
    </>
  );
}
