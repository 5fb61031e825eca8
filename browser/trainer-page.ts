// The desktop app's hidden training window: the peer trains here, in its own renderer process, so
// the dashboard's UI thread never does. It reports every session event to the main process and
// follows its commands (start, leave, duty), which the main process derives from the policies.
import { payoutWallet } from '../shared/chain/owner.js';
import type { TrainerBridge } from '../shared/app/bridge.js';
import { desktopChain, topUpFromLocalKey } from './desktop-account.js';
import { browserStorage } from './storage.js';
import { Trainer } from './trainer.js';

declare global {
  interface Window {
    swarmTrainer?: TrainerBridge;
  }
}

async function main(bridge: TrainerBridge): Promise<void> {
  const [config, storage] = await Promise.all([bridge.config(), browserStorage()]);
  const trainer = new Trainer({ config, storage, name: 'desktop app', runtime: 'electron', emit: (e) => bridge.report(e) });
  // The app's own key is paid; joining the run on chain is signed by the main process.
  if (config.chain) {
    const own = await desktopChain(config.chain, bridge.wallet);
    const faucet = config.localKeys?.[0];
    if (faucet) await topUpFromLocalKey(config.chain, faucet, own.account);
    await trainer.setWallet(payoutWallet(own.chain));
  }
  bridge.onCommand((c) => {
    if (c.type === 'start') trainer.start();
    else if (c.type === 'leave') void trainer.leave(c.reason);
    else trainer.setDuty(c.duty);
  });
  await trainer.detect();
}

if (window.swarmTrainer) main(window.swarmTrainer).catch((e: Error) => window.swarmTrainer?.report({ type: 'phase', data: { phase: 'failed', why: e.message } }));
else document.body.textContent = 'This page runs inside the desktop app only.';
