/** The small members of an enrollment (§7): device capabilities, reprovision policy, custom allocation definition. */
import { child, object, optBool, reqString } from './_check.js'
import { validationFailed } from './_errors.js'
import { API_VERSION, WEBHOOK_URL } from './_rules.js'
import type { CustomAllocationDefinition, DeviceCapabilities, ReprovisionPolicy } from './types.js'
import { MIN_WEBHOOK_API_VERSION, type ValidateOptions } from './validate-options.js'

/** Device capabilities (§7); `iotEdge` defaults to false. */
export function validateDeviceCapabilities(json: unknown, options?: ValidateOptions): DeviceCapabilities {
  const path = options?.path ?? ''
  return { iotEdge: optBool(object(json, path), 'iotEdge', path, false) }
}

/** Reprovision policy (§7); both members default to true. */
export function validateReprovisionPolicy(json: unknown, options?: ValidateOptions): ReprovisionPolicy {
  const path = options?.path ?? ''
  const o = object(json, path)
  return {
    updateHubAssignment: optBool(o, 'updateHubAssignment', path, true),
    migrateDeviceData: optBool(o, 'migrateDeviceData', path, true),
  }
}

/**
 * Custom allocation definition (§7, §8): an absolute http(s) `webhookUrl` and an `apiVersion`
 * no older than `2018-09-01-preview`.
 */
export function validateCustomAllocationDefinition(
  json: unknown,
  options?: ValidateOptions,
): CustomAllocationDefinition {
  const path = options?.path ?? ''
  const o = object(json, path)
  const webhookUrl = reqString(o, 'webhookUrl', path, WEBHOOK_URL)
  const apiVersion = reqString(o, 'apiVersion', path, API_VERSION)
  if (apiVersion < MIN_WEBHOOK_API_VERSION) {
    throw validationFailed(child(path, 'apiVersion'), `must be ${MIN_WEBHOOK_API_VERSION} or later`)
  }
  return { webhookUrl, apiVersion }
}
