/**
 * DPS JSON models (dps-protocol.md §1, §7, §8): types and their runtime validators.
 */
export type * from './types.js'
