// The desktop app's hidden training window (renderer/trainer.html loads it): the peer trains here,
// in its own renderer process, so the dashboard's UI thread never does. It reports every session
// event to the main process and follows its policy loop's commands (start, leave, duty), which the
// preload has checked against the IPC contract.
import { browserRtc } from '../../browser/rtc.js';
import { browserStorage } from '../../browser/storage.js';
import { Trainer } from '../../browser/trainer.js';
import type { TrainerBridge } from '../../shared/app/bridge.js';
import { payoutWallet } from '../../shared/chain/owner.js';
import { desktopChain, topUpFromLocalKey } from './desktop-account.js';

declare global {
  interface Window {
    swarmTrainer?: TrainerBridge;
  }
}

/** The trainer, paid at the app's own key (joining the run on chain is signed by the main process). */
async function setUp(bridge: TrainerBridge): Promise<Trainer> {
  const [config, storage] = await Promise.all([bridge.config(), browserStorage()]);
  const trainer = new Trainer({ config, storage, name: 'desktop app', runtime: 'electron', rtc: browserRtc, emit: (e) => bridge.report(e) });
  if (config.chain) {
    const own = await desktopChain(config.chain, bridge.wallet);
    const faucet = config.localKeys?.[0];
    if (faucet) await topUpFromLocalKey(config.chain, faucet, own.account);
    await trainer.setWallet(payoutWallet(own.chain));
  }
  return trainer;
}

async function main(bridge: TrainerBridge): Promise<void> {
  const trainer = setUp(bridge);
  // Listening at once: the main process sends the current decision as soon as the page has loaded,
  // and it says it only once; commands wait, in order, for the trainer to be set up.
  bridge.onCommand(
    (command) =>
      void trainer.then(
        (t) => t.follow(command),
        () => {},
      ),
  );
  await (await trainer).detect();
}

if (window.swarmTrainer) main(window.swarmTrainer).catch((e: Error) => window.swarmTrainer?.report({ type: 'phase', data: { phase: 'failed', why: e.message } }));
else document.body.textContent = 'This page runs inside the desktop app only.';
