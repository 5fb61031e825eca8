// Electron Forge packaging (npm run package): the app is dist/ (main process and preloads bundled
// by scripts/build-electron.ts, pages built by Vite) plus package.json, in an asar, with Electron's
// fuses set so the packaged binary cannot be turned into a Node runtime or made to load other code.
import type { ForgeConfig } from '@electron-forge/shared-types';
import { FusesPlugin } from '@electron-forge/plugin-fuses';
import { FuseV1Options, FuseVersion } from '@electron/fuses';

/** Kept: the root, package.json and the built app; everything else (sources, node_modules) stays out. */
export function ignoreOutsideApp(path: string): boolean {
  const kept = path === '' || path === '/package.json' || path === '/dist' || /^\/dist\/(electron|renderer)(\/|$)/.test(path);
  return !kept;
}

const config: ForgeConfig = {
  packagerConfig: {
    name: 'Swarm',
    executableName: 'swarm',
    appBundleId: 'org.swarm.desktop',
    asar: true,
    ignore: ignoreOutsideApp,
    // main.cjs bundles every dependency: pruning would otherwise copy the production node_modules back in.
    prune: false,
  },
  rebuildConfig: {},
  makers: [],
  plugins: [
    new FusesPlugin({
      version: FuseVersion.V1,
      [FuseV1Options.RunAsNode]: false,
      [FuseV1Options.EnableCookieEncryption]: true,
      [FuseV1Options.EnableNodeOptionsEnvironmentVariable]: false,
      [FuseV1Options.EnableNodeCliInspectArguments]: false,
      [FuseV1Options.EnableEmbeddedAsarIntegrityValidation]: true,
      [FuseV1Options.OnlyLoadAppFromAsar]: true,
      [FuseV1Options.GrantFileProtocolExtraPrivileges]: false,
    }),
  ],
};

export default config;
