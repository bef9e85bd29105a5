/**
 * The `tpm_challenges` table, shared by every process on the database: the TPM challenges issued
 * to a device (the newest `perDevice` kept, expired ones purged on insert), and the single
 * answer each accepts.
 */
import type Database from 'better-sqlite3'
import type { TpmChallengeRecord } from '@provisio/engine'
import { tpmChallengeBody, tpmChallengeFromRow } from '@provisio/engine'
import { keyOf } from './keyed-table.js'

/** A tpm_challenges row: what changes when answered is in columns, the rest in the body. */
type TpmRow = { keep_until: number; answered_at: number | null; answered_token: string | null; body: string }

export class TpmChallengeTable {
  readonly #insert: Database.Statement
  readonly #purge: Database.Statement<[number]>
  readonly #trim: Database.Statement<[string, string, string, string, number]>
  readonly #list: Database.Statement<[string, string, number], TpmRow>
  readonly #get: Database.Statement<[string, string], TpmRow>
  readonly #answer: Database.Statement<[number, string, number, string, string, number]>
  readonly #add: (idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number) => void
  readonly #answerOnce: (idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number) => TpmChallengeRecord | undefined

  constructor(db: Database.Database) {
    this.#insert = db.prepare(
      `INSERT INTO tpm_challenges (id_scope, challenge_id, device_key, issued_at, keep_until, answered_at, answered_token, body)
       VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)`,
    )
    this.#purge = db.prepare('DELETE FROM tpm_challenges WHERE keep_until <= ?')
    // The device's challenges but the newest `perDevice` (issue time, then id: the memory store's order).
    this.#trim = db.prepare(
      `DELETE FROM tpm_challenges WHERE id_scope = ? AND device_key = ? AND challenge_id NOT IN (
         SELECT challenge_id FROM tpm_challenges WHERE id_scope = ? AND device_key = ?
         ORDER BY issued_at DESC, challenge_id DESC LIMIT ?)`,
    )
    this.#list = db.prepare(
      `SELECT keep_until, answered_at, answered_token, body FROM tpm_challenges
       WHERE id_scope = ? AND device_key = ? AND keep_until > ? ORDER BY issued_at, challenge_id`,
    )
    this.#get = db.prepare('SELECT keep_until, answered_at, answered_token, body FROM tpm_challenges WHERE id_scope = ? AND challenge_id = ?')
    this.#answer = db.prepare(
      `UPDATE tpm_challenges SET answered_at = ?, answered_token = ?, keep_until = ?
       WHERE id_scope = ? AND challenge_id = ? AND answered_token IS NULL AND keep_until > ?`,
    )
    this.#add = db.transaction((idScope: string, c: TpmChallengeRecord, perDevice: number, nowMs: number) => {
      const device = keyOf(c.registrationId)
      this.#purge.run(nowMs)
      this.#insert.run(idScope, c.challengeId, device, c.issuedAtMs, c.keepUntilMs, JSON.stringify(tpmChallengeBody(c)))
      this.#trim.run(idScope, device, idScope, device, Math.max(1, Math.floor(perDevice)))
    }).immediate as never
    this.#answerOnce = db.transaction((idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number) => {
      this.#answer.run(nowMs, token, keepUntilMs, idScope, challengeId, nowMs)
      const row = this.#get.get(idScope, challengeId)
      return row === undefined || row.keep_until <= nowMs ? undefined : tpmChallengeFromRow(row)
    }).immediate as never
  }

  add(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): void {
    this.#add(idScope, challenge, perDevice, nowMs)
  }
  list(idScope: string, registrationId: string, nowMs: number): TpmChallengeRecord[] {
    return this.#list.all(idScope, keyOf(registrationId), nowMs).map(tpmChallengeFromRow)
  }
  answer(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): TpmChallengeRecord | undefined {
    return this.#answerOnce(idScope, challengeId, token, nowMs, keepUntilMs)
  }
}
