import { expect } from 'chai';
import { decodeStaged, encodeStaged } from './staged';
import type { FinishedTask, SessionFacts } from './usage';

const SESSION: SessionFacts = {
  sessionId: 's-1',
  cluster: 'default',
  owner: 'CN=a,O=Bank',
  application: 'pricing',
  subject: undefined,
};

function task(taskId: string, machine = 'node7'): FinishedTask {
  return {
    taskId,
    successful: taskId !== 'bad',
    usage: {
      startTimeMs: 1_796_000_000_123,
      endTimeMs: 1_796_000_001_456,
      cpuTimeMs: 987,
      machine,
      processors: 2,
      maxRssKb: 4096,
      maxVmemKb: 0,
    },
  };
}

describe('staged usage files', () => {
  it('round-trips the facts of a fetch', () => {
    const tasks = [task('1'), task('bad'), task('3', 'host.example')];
    const back = decodeStaged(encodeStaged(SESSION, tasks));
    expect(back.session).to.deep.equal(JSON.parse(JSON.stringify(SESSION)));
    expect(back.tasks).to.deep.equal(tasks);
  });

  it('keeps ids and names with tabs, line breaks or backslashes intact', () => {
    const tasks = [task('a\tb'), task('c', 'evil\nSite: X'), task('[x'), task('d\\e')];
    expect(decodeStaged(encodeStaged(SESSION, tasks)).tasks).to.deep.equal(tasks);
  });

  it('refuses a foreign, cut short or damaged file', () => {
    const good = encodeStaged(SESSION, [task('1')]);
    expect(() => decodeStaged('{"site":"x"}\n')).to.throw(/not a staged usage file/);
    expect(() => decodeStaged(good.slice(0, -5))).to.throw(/cut short|fields/);
    expect(() => decodeStaged(good.replace('\t987\t', '\tx\t'))).to.throw(/not a number/);
  });
});
