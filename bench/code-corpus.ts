// A second corpus of another kind than English prose: this project's own source code (TypeScript
// and Solidity) at a fixed commit, so every clone builds the same text. Characters outside ASCII
// (a few arrows and dashes in comments) become '?', keeping the vocabulary to printable ASCII.
// Built into runs/corpus/ on demand, never committed: `bench/swarm.ts --data code`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The commit whose sources make the corpus (issue 10's submission). */
export const CODE_CORPUS_COMMIT = '37a5a69';

/** Path of the code corpus, built from git at `commit` if it is not there yet. */
export function codeCorpus(commit = CODE_CORPUS_COMMIT, dir = join('runs', 'corpus')): string {
  const path = join(dir, `code-${commit}.txt`);
  if (existsSync(path)) return path;
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  let files: string[];
  try {
    files = git('ls-tree', '-r', '--name-only', commit)
      .split('\n')
      .filter((f) => /\.(ts|tsx|sol)$/.test(f))
      .sort();
  } catch (e) {
    throw new Error(`cannot build the code corpus: commit ${commit} is not in this clone (${(e as Error).message.split('\n')[0]})`);
  }
  const text = files.map((f) => `// ${f}\n${git('show', `${commit}:${f}`)}`).join('\n');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path, Array.from(text, (c) => (c === '\n' || c === '\t' || (c >= ' ' && c <= '~') ? c : '?')).join(''));
  return path;
}
