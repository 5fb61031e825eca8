// The desktop app's entry (bundled to dist/electron/main.cjs): hands the real Electron modules to
// startApp, which holds all the wiring (electron/app.ts, tested with fakes).
import { join } from 'node:path';
import * as electron from 'electron';
import { startApp } from './app.js';

startApp(electron, {
  // Bundled as CommonJS next to the preloads; the pages are built by Vite into dist/renderer.
  rendererDir: join(__dirname, '..', 'renderer'),
  preloadDir: __dirname,
  // --network NAME|FILE and --run ID; Electron's and Chromium's own switches are left to them.
  argv: process.argv.slice(1),
  // Loaded only when packaged: electron-updater reads app-update.yml, which only a packaged app has.
  loadUpdater: async () => (await import('electron-updater')).autoUpdater,
}).catch((error: Error) => {
  console.error(`Swarm could not start: ${error.message}`);
  electron.dialog.showErrorBox('Swarm could not start', error.message);
  electron.app.exit(1);
});
