import { expect } from 'chai';
import { MAX_MS, requestedMs, run as cpuRun } from '../../src/grid/services/cpu';
import { run as echoRun } from '../../src/grid/services/echo';
import { Fifo, Task, TaskQueue, type TaskSession } from '../../src/grid/task-queue';

const session = { id: 's' } as unknown as TaskSession;
const task = (id: string, priority: number): Task => new Task(session, id, priority, '', {}, 0);

describe('grid queues', () => {
  it('Fifo keeps order across growth, compaction and pushFront', () => {
    const q = new Fifo<number>();
    for (let i = 0; i < 5000; i++) q.push(i);
    const seen: number[] = [];
    for (let i = 0; i < 3000; i++) seen.push(q.shift()!);
    q.pushFront(-1);
    expect(q.length).to.equal(2001);
    expect(q.shift()).to.equal(-1);
    expect(q.shift()).to.equal(3000);
    expect(seen.slice(0, 3)).to.deep.equal([0, 1, 2]);
    expect(q.drain()).to.have.length(1999);
    expect(q.shift()).to.equal(undefined);
  });

  it('Fifo.unshiftAll puts items back at the front in their order', () => {
    const q = new Fifo<number>();
    for (let i = 0; i < 10; i++) q.push(i);
    for (let i = 0; i < 5; i++) q.shift();
    q.unshiftAll([3, 4]); // fits in the consumed head
    q.unshiftAll([]);
    q.unshiftAll([-3, -2, -1, 0, 1, 2]); // does not
    expect(q.drain()).to.deep.equal([-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    q.unshiftAll([7]);
    q.push(8);
    expect([q.shift(), q.shift(), q.shift()]).to.deep.equal([7, 8, undefined]);
  });

  it('TaskQueue orders by priority, FIFO among equals, re-queued tasks first', () => {
    const q = new TaskQueue();
    q.push(task('1', 1));
    q.push(task('2', 5));
    q.push(task('3', 1));
    q.push(task('4', 5));
    q.pushFront(task('0', 1));
    const order: string[] = [];
    for (let t = q.shift(); t; t = q.shift()) order.push(t.id);
    expect(order).to.deep.equal(['2', '4', '0', '1', '3']);
    expect(q.length).to.equal(0);
  });
});

describe('grid services', () => {
  it('echo returns its input and fails on "fail:"', () => {
    const input = { binary: new Uint8Array([1, 2]) };
    expect(echoRun(input)).to.equal(input);
    expect(() => echoRun({ text: 'fail:boom' })).to.throw('boom');
  });

  it('cpu reads milliseconds from text or XML, capped', () => {
    expect(requestedMs({ text: ' 25 ' })).to.equal(25);
    expect(requestedMs({ xml: '<w:work xmlns:w="urn:x" ms="12.5"/>' })).to.equal(12.5);
    expect(requestedMs({ xml: '<work><w:ms xmlns:w="urn:x">7</w:ms></work>' })).to.equal(7);
    expect(requestedMs({ text: '99999999' })).to.equal(MAX_MS);
    expect(() => requestedMs({ text: 'soon' })).to.throw(/milliseconds/);
  });

  it('cpu hashes for about the requested time', () => {
    const t0 = Date.now();
    const out = cpuRun({ text: '30' });
    expect(Date.now() - t0).to.be.at.least(29);
    expect(Number(out.text)).to.be.greaterThan(0);
  });
});
