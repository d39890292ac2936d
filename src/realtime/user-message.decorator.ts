import { applyDecorators, SetMetadata, type Type } from '@nestjs/common';
import { MetadataScanner, Reflector } from '@nestjs/core';
import { SubscribeMessage } from '@nestjs/websockets';
import type { ClientEvent } from '../chat/chat.events.js';

const USER_MESSAGE = 'chat:user-message';

/**
 * `@SubscribeMessage` for a request that sends a user's message: the request path counts it in
 * chat_messages_received_total, holds it to the per-user message window (RATE_LIMIT_USER_MESSAGES)
 * and traces it as a send. The gateway declares it on its handler, so the request path compares
 * no event names.
 */
export const SubscribeUserMessage = (event: ClientEvent): MethodDecorator =>
  applyDecorators(SubscribeMessage(event), SetMetadata(USER_MESSAGE, event));

/** The events whose handlers on this gateway class are declared with SubscribeUserMessage. */
export function userMessageEvents(gateway: Type): ReadonlySet<string> {
  const prototype = gateway.prototype as Record<string, () => unknown>;
  const reflector = new Reflector();
  const events = new MetadataScanner()
    .getAllMethodNames(prototype)
    .map((name) => reflector.get<string | undefined>(USER_MESSAGE, prototype[name]!));
  return new Set(events.filter((event) => event !== undefined));
}
