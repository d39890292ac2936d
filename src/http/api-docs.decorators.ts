import { applyDecorators } from '@nestjs/common';
import { ApiParam, ApiResponse, type SchemaObject } from '@nestjs/swagger';
import { ErrorResponseModel } from './api-docs.models.js';

/** The name of the X-API-Key security scheme in the OpenAPI document. */
export const API_KEY_SCHEME = 'api-key';

/** A schema of components.schemas by name; the request schemas there are derived from zod when the document is built. */
export function schemaRef(name: string): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}

/**
 * A path parameter described by a components.schemas entry. OpenAPI allows a reference there
 * (ApiQuery's typings do too); ApiParam's typings take only inline schemas, hence the cast.
 */
export function ApiPathParam(name: string, schemaName: string, description?: string) {
  return ApiParam({ name, description, schema: schemaRef(schemaName) as SchemaObject });
}

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 503;

/** When each status happens (HttpErrorFilter maps the codes). */
const ERROR_STATUS: Record<ErrorStatus, string> = {
  400: 'VALIDATION_FAILED (a field is wrong; `details.fields` names them) or BAD_REQUEST (the body is not JSON)',
  401: 'UNAUTHORIZED: no X-API-Key header, or not one of API_KEYS',
  403: 'FORBIDDEN: a read-only key (`key:read` in API_KEYS) on anything but GET',
  404: 'NOT_FOUND: the room does not exist, or (on a message route) the message does not, or it was deleted (edit)',
  409: 'CONFLICT: `expectedVersion` is not the stored version (`details.currentVersion` is); nothing changed',
  413: 'PAYLOAD_TOO_LARGE: the body is larger than MAX_PAYLOAD_BYTES',
  503: 'UNAVAILABLE: storage could not confirm the outcome; for a message, retrying with the same clientMsgId is safe',
};

/** The error responses a route can give, each with the `{ ok: false, error }` body; 500 INTERNAL (a bug) is left implicit. */
export function ApiErrors(...statuses: ErrorStatus[]) {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, description: ERROR_STATUS[status], type: ErrorResponseModel })));
}
