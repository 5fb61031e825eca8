// The pages' bundle: the dashboard (renderer/), one build for the browser tab and the desktop app,
// and trainer.html, the desktop app's hidden training window (its code is electron/pages/). `base:
// './'` so the same files load from the local server and from the app's own app:// scheme.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'renderer',
  base: './',
  // The default run's training text ships with the pages (the desktop app has no server to fetch it from).
  publicDir: '../data',
  plugins: [react()],
  build: {
    outDir: '../dist/renderer',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    rollupOptions: { input: { index: 'renderer/index.html', trainer: 'renderer/trainer.html' } },
  },
});
