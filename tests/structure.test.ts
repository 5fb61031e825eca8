// The structure docs/architecture.md promises, checked against the code: every import between
// rooms is one its "may import" table allows, no product file (outside tests/, e2e/, bench/) is
// over 500 lines and no product function over 80, measured with TypeScript's own parser. A new
// arrow or a long function then fails `npm test` instead of waiting for someone to notice.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 80;
/** Not product code, or not ours. */
const SKIP = new Set(['node_modules', 'dist', 'runs', 'out', 'tests', 'e2e', 'bench', 'test-results', 'playwright-report', 'generated', '.git']);

interface Rule {
  room: string;
  mayImport: (room: string) => boolean;
}

/** The rooms table: a row per room, its last cell what it may import. */
function rules(): Rule[] {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Rooms'), doc.indexOf('\n## ', doc.indexOf('## Rooms') + 1));
  return table
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .flatMap((row) => {
      const cells = row.split('|').map((c) => c.trim());
      const names = [...cells[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
      const allowed = cells[cells.length - 2];
      return names.map((room) => ({ room, mayImport: allowance(allowed) }));
    });
}

/** "nothing of ours", "all", "all but `x/`", or a list of rooms (`shared/` for every room under it). */
function allowance(cell: string): (room: string) => boolean {
  const named = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  if (cell.startsWith('all but')) return (room) => !named.some((n) => room.startsWith(n));
  if (cell === 'all') return () => true;
  return (room) => named.some((n) => room.startsWith(n));
}

/** A file's room: the innermost room of the table it is in, else the folder under shared/ it is in, else its top-level folder. */
function roomOf(file: string, rooms: readonly string[]): string {
  const listed = rooms.filter((r) => file.startsWith(r)).sort((a, b) => b.length - a.length)[0];
  if (listed) return listed;
  const parts = file.split('/');
  if (parts.length === 1) return file;
  return parts[0] === 'shared' ? `shared/${parts[1]}/` : `${parts[0]}/`;
}

function productFiles(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (SKIP.has(name)) return [];
    if (statSync(path).isDirectory()) return productFiles(path);
    return /\.(ts|tsx)$/.test(name) && !name.endsWith('.d.ts') ? [relative(ROOT, path)] : [];
  });
}

function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => normalize(join(dirname(file), spec)));
}

/** Functions, methods, constructors and accessors longer than the limit, with their lines. */
function longFunctions(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart()).line;
      const last = sf.getLineAndCharacterOfPosition(n.end).line;
      if (last - first + 1 > MAX_FUNCTION_LINES) found.push(`${file}:${first + 1} (${last - first + 1} lines)`);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

describe('the structure the docs promise', () => {
  const files = productFiles();

  it('every import between rooms is one the rooms table allows', () => {
    const table = rules();
    const rooms = table.map((r) => r.room);
    const roomOfFile = (f: string) => roomOf(f, rooms);
    const ruleOf = (room: string) => table.find((r) => r.room === room);
    const unknown = [...new Set(files.map(roomOfFile))].filter((room) => room.endsWith('/') && !ruleOf(room));
    expect(unknown, 'rooms missing from the table in docs/architecture.md').toEqual([]);
    const forbidden = files.flatMap((file) => {
      const from = roomOfFile(file);
      const rule = ruleOf(from);
      if (!rule) return [];
      return importsOf(file)
        .map(roomOfFile)
        .filter((to) => to !== from && to.endsWith('/') && !rule.mayImport(to))
        .map((to) => `${file} → ${to}`);
    });
    expect(forbidden).toEqual([]);
  });

  it(`no product file is over ${MAX_FILE_LINES} lines`, () => {
    const long = files.filter((f) => readFileSync(join(ROOT, f), 'utf8').split('\n').length > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`no product function is over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(files.flatMap(longFunctions)).toEqual([]);
  });
});
