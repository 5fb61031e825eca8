// Preloaded into the local EVM's process (contracts/local-evm.ts). A terminal's Ctrl-C reaches
// every process of the foreground group, but `npm start` reads ownership from the chain after the
// swarm has stopped: the EVM ignores SIGINT and is stopped by its parent (SIGTERM). It exits when
// its parent is gone, however that went: its stdin, a pipe from the parent, closes.
process.on('SIGINT', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
