import { describe, expect, it } from 'vitest';
import { PeerViews, type ViewChanges } from '../coordinator/views.js';
import { rng } from '../shared/base/random.js';

const D = 4;

/** Peers acted out against PeerViews: each keeps the view it was given at placement and folds in the changes after. */
class Swarm {
  readonly views = new PeerViews(D);
  readonly stageOf = new Map<string, number>();
  /** What each peer believes its view is. */
  readonly told = new Map<string, Set<string>>();

  place(peer: string, stage: number): void {
    const changes = this.views.place(peer, stage);
    this.stageOf.set(peer, stage);
    this.told.set(peer, new Set(this.views.view(peer)));
    this.apply(changes);
  }

  remove(peer: string): void {
    const changes = this.views.remove(peer);
    this.stageOf.delete(peer);
    this.told.delete(peer);
    this.apply(changes);
  }

  private apply(changes: ViewChanges): void {
    for (const [to, d] of changes) {
      const v = this.told.get(to);
      if (!v) continue;
      for (const q of d.removed) v.delete(q);
      for (const q of d.added) v.add(q);
    }
  }

  /** Every invariant the coordinator relies on, checked for every peer. */
  check(): void {
    const byStage = new Map<number, string[]>();
    for (const [p, s] of this.stageOf) byStage.set(s, [...(byStage.get(s) ?? []), p]);
    for (const [p, s] of this.stageOf) {
      const view = this.views.view(p);
      expect(new Set(view).size, `${p}'s view has duplicates`).toBe(view.length);
      expect([...this.told.get(p)!].sort(), `what ${p} was told`).toEqual([...view].sort());
      for (const q of view) {
        expect(Math.abs(this.stageOf.get(q)! - s), `${q} in ${p}'s view`).toBeLessThanOrEqual(1);
        expect(this.views.view(q), `links are symmetric (${p}–${q})`).toContain(p);
      }
      const own = byStage.get(s)!.filter((q) => q !== p);
      expect(view.filter((q) => this.stageOf.get(q) === s).sort()).toEqual(own.sort());
      for (const t of [s - 1, s + 1]) {
        const there = byStage.get(t) ?? [];
        const links = view.filter((q) => this.stageOf.get(q) === t).length;
        expect(links, `${p} (stage ${s}) links to stage ${t}`).toBeGreaterThanOrEqual(Math.min(D, there.length));
      }
    }
  }
}

describe('PeerViews', () => {
  it('gives a peer its whole stage and a bounded, symmetric set of each adjacent stage', () => {
    const s = new Swarm();
    for (let i = 0; i < 60; i++) s.place(`p${String(i).padStart(2, '0')}`, i % 3);
    s.check();
    // A middle-stage peer sees its 19 replicas and a few of each neighbour, not all 40.
    expect(s.views.view('p01').length).toBeLessThanOrEqual(19 + 2 * (D + 1));
    expect(s.views.view('p00').length).toBeLessThanOrEqual(19 + D + 1);
  });

  it('keeps the links balanced: nobody in an even swarm carries many more than the bound', () => {
    const s = new Swarm();
    for (let i = 0; i < 200; i++) s.place(`p${i}`, i % 4);
    for (const p of s.stageOf.keys()) {
      const cross = s.views.view(p).filter((q) => s.stageOf.get(q) !== s.stageOf.get(p)).length;
      expect(cross, p).toBeLessThanOrEqual(2 * (D + 1));
    }
  });

  it('a small stage next to a large one: each of its peers links to many, each large-stage peer still to min(D, its size)', () => {
    const s = new Swarm();
    s.place('solo', 0);
    for (let i = 0; i < 12; i++) s.place(`big${i}`, 1);
    s.check();
    expect(s.views.view('solo')).toHaveLength(12);
    s.place('second', 0);
    s.check();
  });

  it('holds every invariant through random churn, moves included, and the changes told reproduce each view', () => {
    const s = new Swarm();
    const r = rng(7);
    let next = 0;
    for (let i = 0; i < 40; i++) s.place(`p${next++}`, Math.floor(r() * 5));
    for (let i = 0; i < 300; i++) {
      const peers = [...s.stageOf.keys()];
      const u = r();
      if (u < 0.4 && peers.length > 2) s.remove(peers[Math.floor(r() * peers.length)]);
      else if (u < 0.6 && peers.length) s.place(peers[Math.floor(r() * peers.length)], Math.floor(r() * 5));
      else s.place(`p${next++}`, Math.floor(r() * 5));
      s.check();
    }
  });

  it('a join costs changes only to its stage and its links, not to the whole swarm', () => {
    const s = new Swarm();
    for (let i = 0; i < 400; i++) s.place(`p${i}`, i % 8);
    const changes = s.views.place('new', 3);
    // Stage 3's 50 replicas, and at most 2·D partners (plus top-ups of their links).
    expect(changes.size).toBeLessThanOrEqual(50 + 4 * D);
    expect(s.views.remove('p3').size).toBeLessThanOrEqual(51 + 4 * D);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new PeerViews(0)).toThrow(/positive integer/);
  });
});
