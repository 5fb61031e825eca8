// Credentials: holdings, re-issued ones to pull, listing for sale, buying, and spending one on a
// prompt to read the model's answer with its on-chain receipt.
import { useQuery } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { formatUnits, parseEther } from 'viem';
import { type SpentAnswer, ensureCredential, spendAndAsk } from '../../shared/buyer/market.js';
import { MAX_GENERATED_TOKENS, MAX_PROMPT_CHARS } from '../../shared/swarm/protocol.js';
import { POLL_MS, useHoldings } from '../chain-queries.js';
import { Card, Empty, Stat, TableHead } from '../components.js';
import { listingProblems } from '../form-checks.js';
import { short, tokenAmount } from '../format.js';
import { act, useDashboard } from '../store.js';
import { WalletBar } from '../wallet/WalletBar.js';
import { type WalletView, useWallet } from '../wallet/context.js';

type Listing = Awaited<ReturnType<NonNullable<WalletView['reader']>['openListings']>>[number];

/** The open listings: the user's own to cancel, the others' to buy one from. */
function ListingsTable({ listings, onChange }: { listings: Listing[]; onChange(): void }) {
  const { chain, account } = useWallet();
  return listings.length ? (
    <table data-testid="listings">
      <TableHead columns={['Listing', 'Seller', 'Left', 'Price', 'Action']} srOnly={['Action']} />
      <tbody>
        {listings.map((l) => (
          <tr key={l.listingId.toString()}>
            <td>{l.listingId.toString()}</td>
            <td>{l.seller === account ? 'you' : short(l.seller)}</td>
            <td>{l.amount.toString()}</td>
            <td>{tokenAmount(l.price)} ETH</td>
            <td>
              {l.seller === account ? (
                <button type="button" onClick={() => act('cancel', () => chain!.cancelListing(l.listingId)).then(onChange)}>
                  Cancel
                </button>
              ) : (
                <button type="button" disabled={!chain} onClick={() => act('buy', () => chain!.buy(l, 1n)).then(onChange)}>
                  Buy 1
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  ) : (
    <Empty>No credential is listed for sale.</Empty>
  );
}

/** A text input whose problem, if any, is told below the form (`${id}-problem`). */
function TextField(p: { label: string; id: string; inputMode: 'numeric' | 'decimal'; value: string; invalid: boolean; onChange(v: string): void }) {
  return (
    <label>
      {p.label}{' '}
      <input
        inputMode={p.inputMode}
        value={p.value}
        aria-invalid={p.invalid || undefined}
        aria-describedby={`${p.id}-problem`}
        onChange={(e) => p.onChange(e.target.value.trim())}
      />
    </label>
  );
}

function Market({ onChange }: { onChange(): void }) {
  const { reader, chain, runId } = useWallet();
  const listings = useQuery({ queryKey: ['listings', runId?.toString()], enabled: !!reader, refetchInterval: POLL_MS, queryFn: () => reader!.openListings(runId!) });
  const changed = () => {
    void listings.refetch();
    onChange();
  };
  const [amount, setAmount] = useState('10');
  const [price, setPrice] = useState('0.001');
  // Checked in the page, in the fields' own words, after a first try: a refused listing sends nothing.
  const [checking, setChecking] = useState(false);
  const problems = checking ? listingProblems(amount, price) : {};
  const list = (e: FormEvent) => {
    e.preventDefault();
    setChecking(true);
    if (Object.keys(listingProblems(amount, price)).length) return;
    void act('list', () => chain!.list(runId!, BigInt(amount), parseEther(price))).then(changed);
  };
  return (
    <>
      <form onSubmit={list} className="row" aria-label="list credentials for sale">
        <TextField label="Amount" id="amount" inputMode="numeric" value={amount} invalid={!!problems.amount} onChange={setAmount} />
        <TextField label="Price per credential (ETH)" id="price" inputMode="decimal" value={price} invalid={!!problems.price} onChange={setPrice} />
        <button type="submit" disabled={!chain}>
          List for sale
        </button>
      </form>
      {(['amount', 'price'] as const).map(
        (k) =>
          problems[k] && (
            <p key={k} id={`${k}-problem`} className="bad field-problem">
              {problems[k]}
            </p>
          ),
      )}
      <ListingsTable listings={listings.data ?? []} onChange={changed} />
    </>
  );
}

/** The answer as it arrives: the text so far, when the first token came, and the whole answer with its receipt at the end. */
interface Asked {
  prompt: string;
  text: string;
  startedAt: number;
  firstMs?: number;
  doneMs?: number;
  answer?: SpentAnswer;
}

function AnswerView({ a }: { a: Asked }) {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return (
    <div className="answer" data-testid="answer" aria-live="polite">
      <pre>
        <span className="muted">{a.prompt}</span>
        {a.answer?.text ?? a.text}
      </pre>
      <p className="muted" data-testid="answer-timing">
        {a.firstMs === undefined ? 'Waiting for the first token…' : `First token after ${seconds(a.firstMs)}`}
        {a.doneMs !== undefined && a.answer && `; ${a.answer.text.length} characters in ${seconds(a.doneMs)}`}
        {a.answer ? '.' : a.firstMs !== undefined ? '; generating…' : ''}
      </p>
      {a.answer && (
        <p className="muted">
          Spend {a.answer.spendId}; receipt {a.answer.answerHash} recorded on chain.
        </p>
      )}
    </div>
  );
}

function Spend({ onChange }: { onChange(): void }) {
  const { chain, account, runId } = useWallet();
  const coordinator = useDashboard((s) => s.host?.config.coordinator);
  const [prompt, setPrompt] = useState('ROMEO:\n');
  const [tokens, setTokens] = useState(80);
  const [asked, setAsked] = useState<Asked>();
  const [busy, setBusy] = useState(false);
  const ask = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const startedAt = performance.now();
    setAsked({ prompt, text: '', startedAt });
    const onText = (text: string) => setAsked((a) => a && { ...a, text, firstMs: a.firstMs ?? performance.now() - a.startedAt });
    const answer = await act('spend', async () => {
      await ensureCredential(chain!, runId!, account!, parseEther('0.01'));
      return spendAndAsk(chain!, runId!, coordinator!, WebSocket, { prompt, maxTokens: tokens }, { onText });
    });
    setAsked((a) => (answer && a ? { ...a, answer, doneMs: performance.now() - a.startedAt } : undefined));
    setBusy(false);
    onChange();
  };
  return (
    <form onSubmit={ask} aria-label="spend a credential on a prompt">
      <label className="block">
        Prompt
        <textarea value={prompt} maxLength={MAX_PROMPT_CHARS} rows={3} onChange={(e) => setPrompt(e.target.value)} />
      </label>
      <label>
        Tokens to generate{' '}
        <input
          type="number"
          min={1}
          max={MAX_GENERATED_TOKENS}
          value={tokens}
          onChange={(e) => setTokens(Math.max(1, Math.min(MAX_GENERATED_TOKENS, Number(e.target.value) || 1)))}
        />
      </label>
      <button type="submit" disabled={!chain || busy || !prompt}>
        {busy ? 'The swarm is answering…' : 'Spend 1 credential and ask'}
      </button>
      <p className="muted">Buys one from the cheapest listing (up to 0.01 ETH) if you hold none.</p>
      {asked && <AnswerView a={asked} />}
    </form>
  );
}

export function CredentialsPage() {
  const { chain, account, runId } = useWallet();
  const h = useHoldings();
  const refresh = () => void h.refetch();
  if (runId === undefined) return <Empty>This swarm settles on no chain: there are no credentials to hold, buy or spend.</Empty>;
  if (!account)
    return (
      <>
        <WalletBar />
        <Empty>Connect a wallet to hold, buy and spend credentials.</Empty>
      </>
    );
  return (
    <>
      <WalletBar />
      <Card title="Holdings" id="holdings">
        <div className="stats">
          <Stat label="Credentials held" value={h.data?.credentials.toString() ?? '…'} testId="credentials-held" />
          <Stat label="Re-issued, to claim" value={h.data?.pending.toString() ?? '…'} testId="credentials-pending" />
          <Stat
            label="Re-issued, accruing"
            value={h.data ? tokenAmount(h.data.accrued) : '…'}
            hint={`your share of every spent credential, fraction included (${h.data ? formatUnits(h.data.accrued, 18) : '…'}); whole credentials can be claimed`}
            testId="credentials-accrued"
          />
          <Stat label="Sales to withdraw" value={h.data ? `${tokenAmount(h.data.proceeds)} ETH` : '…'} />
        </div>
        <div className="row">
          <button type="button" disabled={!chain || !h.data?.pending} onClick={() => act('claim credentials', () => chain!.claimCredentials(runId)).then(refresh)}>
            Claim credentials
          </button>
          <button type="button" disabled={!chain || !h.data?.proceeds} onClick={() => act('withdraw', () => chain!.withdrawProceeds()).then(refresh)}>
            Withdraw sales
          </button>
        </div>
      </Card>
      <Card title="Market" id="market">
        <Market onChange={refresh} />
      </Card>
      <Card title="Ask the model" id="spend">
        <Spend onChange={refresh} />
      </Card>
    </>
  );
}
