/**
 * @provisio/server — the Node adapter and CLI of Provisio: TLS listeners, the dev PKI,
 * configuration and the embedded defaults of `provisio serve`.
 */
export { startServer, type RunningServer, type Endpoints, type PolicyEndpoint, type StartOptions, type HubRelay } from './serve.js'
export { runPolicies, PoliciesError, POLICIES_USAGE, type PoliciesOptions } from './policies.js'
export { resolveConfig, DEFAULT_CONFIG, SETTINGS, ConfigError, type ServeConfig, type LogLevel, type PolicyConfig } from './config.js'
export { createLogger, type Logger } from './logger.js'
export { ensureDevPki, PKI_FILES, type ServerPki } from './pki.js'
export { createHttpsListener, clientChain } from './https.js'
export { createMqttTransport, listenMqtt, type MqttTransport, type MqttTransportOptions } from './mqtt.js'
export { WebSocketRouter, WEBSOCKET_PATH, MAX_WEBSOCKET_MESSAGE, type WebSocketConnection, type WebSocketHandler } from './websocket.js'
export { simulateCommand, formatSummary, percentile, throttleLimit, type SimulationSummary } from './simulate.js'
export { createServiceClient, type ServiceClient, type ServiceClientOptions } from './service-client.js'
export { startTpmSimulator, swtpmBackend, type TpmBackend, type TpmSimulator, type TpmSimulatorOptions } from './tpm-simulator.js'
export { createEmulatorSite, findEmulatorDist, EMULATOR_PATH, type EmulatorSite, type EmulatorPublicConfig } from './emulator.js'
export { OriginPolicy, DEFAULT_CORS_ORIGINS, isDeviceApiPath, normaliseOrigin, type OriginVerdict } from './origins.js'
