/** XML Schema dateTime and duration values, as the WS-* lifetime and expiry elements carry them. */
import { GatewayError } from '../errors/catalogue';

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}

const DATE_TIME = /^-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?$/;
const DURATION = /^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** An xs:dateTime as ms since the epoch; one without a time zone is read as UTC. */
export function parseDateTime(text: string, where: string): number {
  const t = text.trim();
  const ms = DATE_TIME.test(t) ? Date.parse(/(?:Z|[+-]\d{2}:\d{2})$/.test(t) ? t : `${t}Z`) : NaN;
  if (Number.isNaN(ms)) {
    throw new GatewayError('SSP_TERMINATION_TIME_INVALID', `${where}: '${clip(t)}' is not an xs:dateTime`);
  }
  return ms;
}

/** The time an xs:duration after `fromMs` (years and months on the calendar, as XML Schema adds them). */
export function addDuration(fromMs: number, text: string, where: string): number {
  const t = text.trim();
  const m = DURATION.exec(t);
  if (!m || t === 'P' || t.endsWith('T') || t === '-P') {
    throw new GatewayError('SSP_TERMINATION_TIME_INVALID', `${where}: '${clip(t)}' is not an xs:duration`);
  }
  const sign = m[1] ? -1 : 1;
  const n = (i: number): number => (m[i] ? Number(m[i]) : 0);
  const d = new Date(fromMs);
  d.setUTCFullYear(
    d.getUTCFullYear() + sign * n(2),
    d.getUTCMonth() + sign * n(3),
    d.getUTCDate() + sign * n(4),
  );
  const at = d.getTime() + sign * ((n(5) * 60 + n(6)) * 60 + n(7)) * 1000;
  if (!Number.isFinite(at)) {
    throw new GatewayError('SSP_TERMINATION_TIME_INVALID', `${where}: '${clip(t)}' is out of range`);
  }
  return at;
}
