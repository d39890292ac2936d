import { Controller, UseFilters } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { ChatError } from '../chat/chat.errors.js';
import type { Message, Room } from '../chat/chat.events.js';
import { ChatService } from '../chat/chat.service.js';
import { fieldsNestedTooDeep, MAX_DATA_DEPTH } from '../common/payload-shape.js';
import { CommandErrorFilter } from './command-error.filter.js';
import { COMMAND_PATTERNS } from './command-patterns.js';

interface MemberRef {
  roomId: string;
  userId: string;
}

/**
 * Commands from trusted backend services over Nest's Redis transport: the same ChatService calls,
 * validation and errors as the HTTP API (messages skip membership checks). Which replica runs a
 * request is settled before it gets here, by ClaimingRedisServer.
 */
@Controller()
@UseFilters(CommandErrorFilter)
export class CommandsController {
  constructor(private readonly chat: ChatService) {}

  /** Replies with the stored Message; a repeated clientMsgId replies with the stored one and is not broadcast again. */
  @MessagePattern(COMMAND_PATTERNS.messageSend)
  async sendMessage(@Payload() data: unknown): Promise<Message> {
    return (await this.chat.post(withinDepth(data))).message;
  }

  /** Any message of the room, whoever sent it (a trusted caller); replies with the latest Message. */
  @MessagePattern(COMMAND_PATTERNS.messageEdit)
  async editMessage(@Payload() data: unknown): Promise<Message> {
    return this.chat.edit(null, withinDepth(data));
  }

  /** Replies with the tombstone; deleting a deleted message replies with it unchanged. */
  @MessagePattern(COMMAND_PATTERNS.messageDelete)
  async deleteMessage(@Payload() data: unknown): Promise<Message> {
    return this.chat.deleteMessage(null, withinDepth(data));
  }

  @MessagePattern(COMMAND_PATTERNS.roomUpsert)
  async upsertRoom(@Payload() data: unknown): Promise<Room> {
    return (await this.chat.upsertRoom(withinDepth(data))).room;
  }

  @MessagePattern(COMMAND_PATTERNS.memberAdd)
  async addMember(@Payload() data: unknown): Promise<MemberRef> {
    await this.chat.addMember(withinDepth(data));
    return memberRef(data);
  }

  @MessagePattern(COMMAND_PATTERNS.memberRemove)
  async removeMember(@Payload() data: unknown): Promise<MemberRef> {
    await this.chat.removeMember(withinDepth(data));
    return memberRef(data);
  }
}

/** Data nested deeper than the sockets and HTTP allow is refused before the domain walks it. */
function withinDepth(data: unknown): unknown {
  const tooDeep = fieldsNestedTooDeep(data);
  if (tooDeep) throw new ChatError('VALIDATION_FAILED', `data nests deeper than ${MAX_DATA_DEPTH} levels`, { fields: tooDeep });
  return data;
}

/** Only called once ChatService accepted `data`, so both fields are valid strings. */
function memberRef(data: unknown): MemberRef {
  const { roomId, userId } = data as MemberRef;
  return { roomId, userId };
}
