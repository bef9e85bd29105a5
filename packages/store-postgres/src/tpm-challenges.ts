/**
 * The `tpm_challenges` table on PostgreSQL, shared by every instance on the database: the TPM
 * challenges issued to a device (the newest `perDevice` kept, expired ones purged on insert, in
 * one transaction), and the single answer each accepts (a compare-and-set `UPDATE`).
 */
import type pg from 'pg'
import type { TpmChallengeRecord } from '@provisio/engine'
import { tpmChallengeBody, tpmChallengeFromRow } from '@provisio/engine'
import { keyOf, transaction, type Statements } from './sql.js'

/** A tpm_challenges row (BIGINT columns arrive as strings): what an answer changes is in columns, the rest in the body. */
type TpmRow = { keep_until: string; answered_at: string | null; answered_token: string | null; body: string }

export class TpmChallengeQueries {
  readonly #statements: Statements
  readonly #pool: pg.Pool
  readonly #sql: Record<'insert' | 'purge' | 'trim' | 'list' | 'get' | 'answer', string>

  /** @param s the quoted schema name */
  constructor(statements: Statements, pool: pg.Pool, s: string) {
    this.#statements = statements
    this.#pool = pool
    this.#sql = {
      insert: `INSERT INTO ${s}.tpm_challenges (id_scope, challenge_id, device_key, issued_at, keep_until, answered_at, answered_token, body)
                  VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)`,
      purge: `DELETE FROM ${s}.tpm_challenges WHERE keep_until <= $1`,
      // The device's challenges but the newest $3 (issue time, then id: the memory store's order).
      trim: `DELETE FROM ${s}.tpm_challenges WHERE id_scope = $1 AND device_key = $2 AND challenge_id NOT IN (
                  SELECT challenge_id FROM ${s}.tpm_challenges WHERE id_scope = $1 AND device_key = $2
                  ORDER BY issued_at DESC, challenge_id DESC LIMIT $3)`,
      list: `SELECT keep_until, answered_at, answered_token, body FROM ${s}.tpm_challenges
                WHERE id_scope = $1 AND device_key = $2 AND keep_until > $3 ORDER BY issued_at, challenge_id`,
      get: `SELECT keep_until, answered_at, answered_token, body FROM ${s}.tpm_challenges WHERE id_scope = $1 AND challenge_id = $2`,
      // Compare-and-set: only an unanswered, unexpired challenge takes an answer.
      answer: `UPDATE ${s}.tpm_challenges SET answered_at = $3, answered_token = $4, keep_until = $5
                  WHERE id_scope = $1 AND challenge_id = $2 AND answered_token IS NULL AND keep_until > $3
                  RETURNING keep_until, answered_at, answered_token, body`,
    }
  }

  async add(idScope: string, challenge: TpmChallengeRecord, perDevice: number, nowMs: number): Promise<void> {
    const device = keyOf(challenge.registrationId)
    await transaction(this.#pool, async (db) => {
      await this.#statements.run(db, this.#sql.purge, [nowMs])
      await this.#statements.run(db, this.#sql.insert, [idScope, challenge.challengeId, device, challenge.issuedAtMs, challenge.keepUntilMs, JSON.stringify(tpmChallengeBody(challenge))])
      await this.#statements.run(db, this.#sql.trim, [idScope, device, Math.max(1, Math.floor(perDevice))])
    })
  }

  async list(idScope: string, registrationId: string, nowMs: number): Promise<TpmChallengeRecord[]> {
    const { rows } = await this.#statements.run<TpmRow>(this.#pool, this.#sql.list, [idScope, keyOf(registrationId), nowMs])
    return rows.map(tpmChallengeFromRow)
  }

  async answer(idScope: string, challengeId: string, token: string, nowMs: number, keepUntilMs: number): Promise<TpmChallengeRecord | undefined> {
    const answered = await this.#statements.run<TpmRow>(this.#pool, this.#sql.answer, [idScope, challengeId, nowMs, token, keepUntilMs])
    if (answered.rows.length === 1) return tpmChallengeFromRow(answered.rows[0]!)
    // Not ours to answer: answered before (by this or another token), expired, or unknown.
    const { rows } = await this.#statements.run<TpmRow>(this.#pool, this.#sql.get, [idScope, challengeId])
    const row = rows[0]
    return row === undefined || Number(row.keep_until) <= nowMs ? undefined : tpmChallengeFromRow(row)
  }
}
