// The tray icon: the app lives here when its dashboard is closed. A status line says what the
// policies decided and why; the user can pause, resume or snooze, opt in to start at login, open
// the dashboard or quit. The menu is a pure function of the PolicyView (tested without Electron).
import type { Menu as MenuType, NativeImage, nativeImage as NativeImageModule, Tray as TrayType } from 'electron';
import { type PolicyAction, type PolicyView, SNOOZE_HOURS, type SnoozeHours } from '../shared/policy/index.js';

export interface TrayActions {
  pause(): void;
  resume(): void;
  snooze(hours: SnoozeHours): void;
  setStartAtLogin(enabled: boolean): void;
  openDashboard(): void;
  quit(): void;
}

/** A menu item as the tray builds it: a subset of Electron's MenuItemConstructorOptions whose click takes no arguments. */
export interface TrayItem {
  id?: string;
  label?: string;
  type?: 'normal' | 'separator' | 'submenu' | 'checkbox';
  enabled?: boolean;
  checked?: boolean;
  click?: () => void;
  submenu?: TrayItem[];
}

export function trayTemplate(view: PolicyView, actions: TrayActions): TrayItem[] {
  const userPaused = view.pausedUntil !== undefined;
  return [
    { id: 'status', label: view.decision.reason, enabled: false },
    { type: 'separator' },
    userPaused ? { id: 'resume', label: 'Resume', click: () => actions.resume() } : { id: 'pause', label: 'Pause', click: () => actions.pause() },
    {
      id: 'snooze',
      label: 'Snooze',
      type: 'submenu',
      submenu: SNOOZE_HOURS.map((hours) => ({ id: `snooze-${hours}`, label: hours === 1 ? '1 hour' : `${hours} hours`, click: () => actions.snooze(hours) })),
    },
    { type: 'separator' },
    // Reads the setting, not the clicked item: the menu is rebuilt from every new view anyway.
    { id: 'start-at-login', label: 'Start at login', type: 'checkbox', checked: view.settings.startAtLogin, click: () => actions.setStartAtLogin(!view.settings.startAtLogin) },
    { id: 'open', label: 'Open dashboard', click: () => actions.openDashboard() },
    { type: 'separator' },
    { id: 'quit', label: 'Quit Swarm', click: () => actions.quit() },
  ];
}

const COLOURS: Record<PolicyAction, [number, number, number]> = {
  run: [0x2e, 0xb8, 0x5c],
  throttle: [0xf0, 0xa0, 0x20],
  pause: [0x90, 0x90, 0x90],
};

/**
 * A round dot in the decision's colour, as a BGRA bitmap (nativeImage.createFromBitmap): drawn
 * here rather than shipped as files, so the tray needs no assets next to the bundle.
 */
export function trayIconBitmap(action: PolicyAction, size = 16): Buffer {
  const [r, g, b] = COLOURS[action];
  const pixels = Buffer.alloc(size * size * 4);
  const c = (size - 1) / 2;
  const radius = size / 2 - 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Coverage of the pixel by the disc, for a smooth edge.
      const alpha = Math.max(0, Math.min(1, radius + 0.5 - Math.hypot(x - c, y - c)));
      pixels.set([b, g, r, Math.round(alpha * 255)], (y * size + x) * 4);
    }
  }
  return pixels;
}

export interface TrayModules {
  Tray: new (image: NativeImage) => Pick<TrayType, 'setToolTip' | 'setContextMenu' | 'setImage' | 'on' | 'destroy'>;
  Menu: Pick<typeof MenuType, 'buildFromTemplate'>;
  nativeImage: Pick<typeof NativeImageModule, 'createFromBitmap'>;
}

export interface SwarmTray {
  update(view: PolicyView): void;
  destroy(): void;
}

export function createTray(modules: TrayModules, actions: TrayActions, view: PolicyView, platform: NodeJS.Platform = process.platform): SwarmTray {
  const icon = (action: PolicyAction) => modules.nativeImage.createFromBitmap(trayIconBitmap(action), { width: 16, height: 16 });
  const tray = new modules.Tray(icon(view.decision.action));
  // Windows opens the menu on right-click only: a left click opens the dashboard, as users expect.
  if (platform === 'win32') tray.on('click', () => actions.openDashboard());
  let shown: PolicyAction | undefined;
  const update = (next: PolicyView) => {
    tray.setToolTip(next.decision.reason);
    tray.setContextMenu(modules.Menu.buildFromTemplate(trayTemplate(next, actions)));
    if (next.decision.action !== shown) tray.setImage(icon(next.decision.action));
    shown = next.decision.action;
  };
  update(view);
  return { update, destroy: () => tray.destroy() };
}
