// A tab trains only when its user asked it to: a buyer who opens the dashboard to spend a credential
// must not find the GPU training. Asked once per browser and kept. The policy loop's commands reach
// the trainer only while the answer is yes; what they asked for (train or not, at what duty) is
// followed the moment it becomes yes.
import { Emitter } from '../../shared/base/emitter.js';
import type { TrainerCommand } from '../../shared/policy/types.js';
import type { TrainChoice } from '../app-host.js';

const KEY = 'swarm.trainHere';

export function trainChoice(trainer: { follow(c: TrainerCommand): Promise<void> }): TrainChoice & { follow(c: TrainerCommand): void } {
  const saved = localStorage.getItem(KEY);
  let yes: boolean | undefined = saved === null ? undefined : saved === 'yes';
  const wanted: { train: boolean; duty?: number } = { train: false };
  const changes = new Emitter<{ change: boolean }>();
  return {
    current: () => yes,
    follow(c) {
      if (c.type === 'duty') wanted.duty = c.duty;
      else wanted.train = c.type === 'start';
      if (yes) void trainer.follow(c);
    },
    async set(choice) {
      localStorage.setItem(KEY, choice ? 'yes' : 'no');
      if (choice === yes) return;
      yes = choice;
      changes.emit('change', choice);
      if (!choice) return trainer.follow({ type: 'leave', reason: 'you chose not to train in this tab' });
      if (wanted.duty !== undefined) await trainer.follow({ type: 'duty', duty: wanted.duty });
      if (wanted.train) await trainer.follow({ type: 'start' });
    },
    onChange: (l) => changes.on('change', l),
  };
}
