import { crc32 } from 'node:zlib';

/**
 * The line format of the ingest's spool and its dead-letter file: `crc32 json\n`, so a line cut
 * short by a crash, or damaged on disk, is told apart from a good one.
 */
export function encodeRecord(record: object): Buffer {
  const json = JSON.stringify(record);
  const sum = crc32(json).toString(16).padStart(8, '0');
  return Buffer.from(`${sum} ${json}\n`, 'utf8');
}

/** The record of one line (without its newline), or null when its checksum does not match. */
export function decodeRecord<T = Record<string, unknown>>(line: string): T | null {
  if (line.length < 10 || line[8] !== ' ') return null;
  const json = line.slice(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return null;
  try {
    const value = JSON.parse(json) as unknown;
    return typeof value === 'object' && value !== null ? (value as T) : null;
  } catch {
    return null;
  }
}
