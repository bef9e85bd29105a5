/**
 * @provisio/protocol — the Azure DPS wire vocabulary shared by every transport and the engine.
 */
export * from './models/index.js'
