import { expect } from 'chai';
import { MemoryStore } from './memory-store';
import { RateWindows } from './rate-window';
import type { RateLimit } from './store';

/** A clock the test moves by hand; starts on a round number so windows are easy to read. */
function fakeClock(start = 1_000_000): {
  now: () => number;
  set(t: number): void;
  advance(ms: number): void;
} {
  let t = start;
  return {
    now: () => t,
    set: (v) => {
      t = v;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

function limit(
  key: string,
  threshold: number,
  intervalMs: number,
  intervalType: 'fixed' | 'moving',
  enforce = true,
): RateLimit {
  return { key, threshold, intervalMs, intervalType, enforce };
}

describe('RateWindows', () => {
  describe('fixed windows', () => {
    it('admits the threshold per epoch-aligned window and refuses until the window ends', () => {
      const clock = fakeClock(1_000_000); // a window boundary for 1000 ms
      const rw = new RateWindows(clock.now);
      const l = [limit('a', 3, 1000, 'fixed')];
      for (let i = 0; i < 3; i++) {
        expect(rw.admit(l)).to.deep.equal({ admitted: true, over: [false], retryAfterMs: 0 });
        clock.advance(100);
      }
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 700 });
      clock.set(1_000_999);
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 1 });
      clock.set(1_001_000);
      expect(rw.admit(l)).to.deep.equal({ admitted: true, over: [false], retryAfterMs: 0 });
    });

    it('aligns windows to the epoch, not to the first request', () => {
      const clock = fakeClock(1_000_900);
      const rw = new RateWindows(clock.now);
      const l = [limit('a', 1, 1000, 'fixed')];
      expect(rw.admit(l).admitted).to.equal(true);
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 100 });
      clock.advance(100);
      expect(rw.admit(l).admitted).to.equal(true);
    });

    it('does not charge refused requests to the next window', () => {
      const clock = fakeClock();
      const rw = new RateWindows(clock.now);
      const l = [limit('a', 2, 1000, 'fixed')];
      const run = (n: number): number => {
        let ok = 0;
        for (let i = 0; i < n; i++) if (rw.admit(l).admitted) ok++;
        return ok;
      };
      expect(run(10)).to.equal(2);
      clock.advance(1000);
      expect(run(10)).to.equal(2);
    });
  });

  describe('moving windows', () => {
    it('counts the last intervalMs exactly: an entry at s counts while now < s + interval', () => {
      const clock = fakeClock(0);
      const rw = new RateWindows(clock.now);
      const l = [limit('m', 3, 1000, 'moving')];
      for (const t of [100, 300, 600]) {
        clock.set(t);
        expect(rw.admit(l).admitted).to.equal(true);
      }
      clock.set(700);
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 400 });
      clock.set(1099);
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 1 });
      clock.set(1100);
      expect(rw.admit(l)).to.deep.equal({ admitted: true, over: [false], retryAfterMs: 0 });
      // Now 300, 600 and 1100 are in the window: the next to leave is 300.
      clock.set(1200);
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 100 });
    });

    it('waits for the (count - threshold + 1)-th oldest entry when the log holds more than the threshold', () => {
      const clock = fakeClock(0);
      const rw = new RateWindows(clock.now);
      // Observed only, so the log grows past the threshold.
      for (const t of [0, 100, 200, 300, 400]) {
        clock.set(t);
        rw.admit([limit('m', 2, 1000, 'moving', false)]);
      }
      const enforced = [limit('m', 2, 1000, 'moving')];
      clock.set(500);
      expect(rw.admit(enforced)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 800 });
      clock.set(1299);
      expect(rw.admit(enforced)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 1 });
      clock.set(1300);
      expect(rw.admit(enforced).admitted).to.equal(true);
    });

    it('does not log refused requests', () => {
      const clock = fakeClock(0);
      const rw = new RateWindows(clock.now);
      const l = [limit('m', 2, 1000, 'moving')];
      expect(rw.admit(l).admitted).to.equal(true);
      expect(rw.admit(l).admitted).to.equal(true);
      for (let t = 10; t < 1000; t += 10) {
        clock.set(t);
        expect(rw.admit(l).admitted).to.equal(false);
      }
      clock.set(1000);
      expect(rw.admit(l).admitted).to.equal(true);
      expect(rw.admit(l).admitted).to.equal(true);
      expect(rw.admit(l).admitted).to.equal(false);
    });

    it('keeps the log ordered when the clock steps back', () => {
      const clock = fakeClock(5000);
      const rw = new RateWindows(clock.now);
      const l = [limit('m', 2, 1000, 'moving')];
      rw.admit(l);
      clock.set(4500);
      rw.admit(l);
      clock.set(5600);
      // 4500 has left; 5000 is the only entry left, so one more fits.
      expect(rw.admit(l)).to.deep.equal({ admitted: true, over: [false], retryAfterMs: 0 });
      expect(rw.admit(l)).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 400 });
    });
  });

  describe('several limits in one decision', () => {
    it('charges no limit when any enforced one refuses (SLA not charged when the SLD refuses)', () => {
      const clock = fakeClock();
      const rw = new RateWindows(clock.now);
      const sla = limit('sla', 10, 1000, 'moving');
      const sld = limit('sld', 2, 1000, 'fixed');
      expect(rw.admit([sla, sld]).admitted).to.equal(true);
      expect(rw.admit([sla, sld]).admitted).to.equal(true);
      for (let i = 0; i < 5; i++) {
        expect(rw.admit([sla, sld])).to.deep.equal({
          admitted: false,
          over: [false, true],
          retryAfterMs: 1000,
        });
      }
      // The SLA saw 2 admissions, not 7: 8 more fit.
      let ok = 0;
      for (let i = 0; i < 20; i++) if (rw.admit([sla]).admitted) ok++;
      expect(ok).to.equal(8);
    });

    it('reports the longest wait among the refusing limits', () => {
      const clock = fakeClock(1_000_000);
      const rw = new RateWindows(clock.now);
      const fixed = limit('f', 1, 1000, 'fixed');
      const moving = limit('m', 1, 5000, 'moving');
      expect(rw.admit([fixed, moving]).admitted).to.equal(true);
      clock.advance(700);
      // fixed: 300 ms to its window end; moving: 4300 ms until the entry leaves.
      expect(rw.admit([fixed, moving])).to.deep.equal({
        admitted: false,
        over: [true, true],
        retryAfterMs: 4300,
      });
      expect(rw.admit([fixed])).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 300 });
    });

    it('never refuses for observed (enforce: false) limits, but counts them and reports them in over', () => {
      const clock = fakeClock();
      const rw = new RateWindows(clock.now);
      const notify = limit('n', 2, 1000, 'fixed', false);
      const overs = [];
      for (let i = 0; i < 4; i++) {
        const d = rw.admit([notify]);
        expect(d.admitted).to.equal(true);
        expect(d.retryAfterMs).to.equal(0);
        overs.push(d.over[0]);
      }
      expect(overs).to.deep.equal([false, false, true, true]);
      // All 4 were counted: the same counter, enforced, is over.
      expect(rw.admit([{ ...notify, enforce: true }]).admitted).to.equal(false);
    });

    it('does not count an observed limit when an enforced one refuses, nor let it add to the wait', () => {
      const clock = fakeClock(1_000_000);
      const rw = new RateWindows(clock.now);
      const notify = limit('n', 1, 10_000, 'moving', false);
      const enforced = limit('e', 1, 1000, 'fixed');
      expect(rw.admit([notify, enforced]).admitted).to.equal(true);
      expect(rw.admit([notify, enforced])).to.deep.equal({
        admitted: false,
        over: [true, true],
        retryAfterMs: 1000,
      });
      clock.advance(1000);
      expect(rw.admit([notify, enforced])).to.deep.equal({
        admitted: true,
        over: [true, false],
        retryAfterMs: 0,
      });
      // Two admissions in the observed log, none of the refusals.
      const d = rw.admit([{ ...notify, threshold: 2, enforce: true }]);
      expect(d).to.deep.equal({ admitted: false, over: [true], retryAfterMs: 9000 });
      expect(rw.admit([{ ...notify, threshold: 3, enforce: true }]).admitted).to.equal(true);
    });

    it('admits an empty list of limits', () => {
      expect(new RateWindows().admit([])).to.deep.equal({ admitted: true, over: [], retryAfterMs: 0 });
    });

    it('rejects a limit without a positive interval', () => {
      expect(() => new RateWindows().admit([limit('x', 1, 0, 'fixed')])).to.throw(RangeError);
    });
  });

  describe('idle cleanup', () => {
    it('forgets counters once nothing in them can count any more', () => {
      const clock = fakeClock(1_000_000);
      const rw = new RateWindows(clock.now);
      for (let i = 0; i < 100; i++) {
        rw.admit([limit(`f${i}`, 5, 1000, 'fixed'), limit(`m${i}`, 5, 3000, 'moving')]);
      }
      expect(rw.size).to.equal(200);
      clock.advance(1500);
      rw.admit([]);
      // Fixed windows ended; the moving logs still hold entries inside their 3 s.
      expect(rw.size).to.equal(100);
      clock.advance(1500);
      rw.admit([]);
      expect(rw.size).to.equal(0);
    });

    it('keeps a moving log while its newest entry still counts', () => {
      const clock = fakeClock(0);
      const rw = new RateWindows(clock.now);
      const l = [limit('m', 5, 3000, 'moving')];
      rw.admit(l);
      clock.set(2500);
      rw.admit(l);
      clock.set(4000);
      rw.admit([]);
      expect(rw.size).to.equal(1);
      clock.set(5500);
      rw.admit([]);
      expect(rw.size).to.equal(0);
    });

    it('stays bounded under a steady stream of new keys', () => {
      const clock = fakeClock(0);
      const rw = new RateWindows(clock.now);
      for (let t = 0; t < 60_000; t += 10) {
        clock.set(t);
        rw.admit([limit(`k${t}`, 1, 100, 'fixed')]);
      }
      // One new key per 10 ms, each idle after 100 ms: about a second's worth survives.
      expect(rw.size).to.be.at.most(110);
    });
  });
});

describe('MemoryStore.admit', () => {
  it('decides with the in-process windows', async () => {
    const store = new MemoryStore();
    const l = [limit('x', 1, 60_000, 'moving')];
    expect((await store.admit(l)).admitted).to.equal(true);
    const d = await store.admit(l);
    expect(d.admitted).to.equal(false);
    expect(d.retryAfterMs).to.be.within(59_000, 60_000);
  });
});
