/** Verifies an audit file's hash chain and names the first line that breaks it. */
import { createReadStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkLine, GENESIS_HASH } from '../observability/audit-log';

export type AuditVerdict =
  | { ok: true; records: number; lastHash: string }
  | { ok: false; records: number; line: number; seq?: number; reason: string };

/** Streams the file line by line; lines are split and hashed as raw bytes so the check is byte-exact. */
export async function verifyAuditFile(file: string): Promise<AuditVerdict> {
  let records = 0;
  let prevHash = GENESIS_HASH;
  let lineNo = 0;
  let carry: Buffer = Buffer.alloc(0);

  const check = (raw: Buffer): AuditVerdict | null => {
    lineNo += 1;
    const c = checkLine(raw);
    if (!c.ok)
      return {
        ok: false,
        records,
        line: lineNo,
        ...(c.seq === undefined ? {} : { seq: c.seq }),
        reason: c.reason,
      };
    const expected = records + 1;
    if (c.prev !== prevHash) {
      const where =
        lineNo === 1 ? 'the first record does not start a chain' : 'prev does not match the previous hash';
      const seqNote = c.seq === expected ? '' : `; seq ${c.seq}, expected ${expected}`;
      return {
        ok: false,
        records,
        line: lineNo,
        seq: c.seq,
        reason: `${where}: a record was deleted, reordered or inserted${seqNote}`,
      };
    }
    if (c.seq !== expected) {
      return {
        ok: false,
        records,
        line: lineNo,
        seq: c.seq,
        reason: `seq ${c.seq} is not consecutive (expected ${expected})`,
      };
    }
    records += 1;
    prevHash = c.hash;
    return null;
  };

  const stream = createReadStream(file);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a)) {
        const verdict = check(data.subarray(0, nl));
        if (verdict) return verdict;
        data = data.subarray(nl + 1);
      }
      // Copy so the remainder does not pin the whole chunk it came from.
      carry = Buffer.from(data);
    }
  } finally {
    stream.destroy();
  }
  if (carry.length > 0) {
    lineNo += 1;
    const c = checkLine(carry);
    return {
      ok: false,
      records,
      line: lineNo,
      ...(c.seq === undefined ? {} : { seq: c.seq }),
      reason: 'truncated last line (no line end): the writer stopped in the middle of a record',
    };
  }
  return { ok: true, records, lastHash: prevHash };
}

const USAGE = 'usage: symphony-soap-proxy audit verify FILE';

/** `audit verify FILE`: 0 when the chain is intact, 1 when it is broken, 2 on usage or I/O errors. */
export async function auditCommand(argv: string[]): Promise<number> {
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: {} }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (positionals.length !== 2 || positionals[0] !== 'verify') {
    console.error(USAGE);
    return 2;
  }
  const file = positionals[1]!;
  let v: AuditVerdict;
  try {
    v = await verifyAuditFile(file);
  } catch (e) {
    console.error(`cannot read ${file}: ${(e as Error).message}`);
    return 2;
  }
  if (v.ok) {
    console.log(`ok: ${v.records} records, chain intact (last hash ${v.lastHash})`);
    return 0;
  }
  const seq = v.seq === undefined ? '' : ` (record seq ${v.seq})`;
  console.log(`BROKEN at line ${v.line}${seq}: ${v.reason}`);
  return 1;
}
