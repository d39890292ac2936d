import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { ChatService } from '../chat/chat.service.js';
import { ModerationService, type ModerationKind } from '../chat/moderation.service.js';
import { PresenceService } from '../chat/presence.service.js';
import { API_KEY_SCHEME, ApiErrors, ApiPathParam, schemaRef } from './api-docs.decorators.js';
import { BanListModel, MemberListModel, MuteListModel, PresenceListModel, RoomModel } from './api-docs.models.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { asObject } from './request-body.js';

/** Rooms and membership for backend services: one-line delegations to ChatService. */
@ApiTags('rooms')
@ApiSecurity(API_KEY_SCHEME)
@ApiPathParam('roomId', 'RoomId')
@Controller('v1/rooms/:roomId')
@UseGuards(ApiKeyGuard)
export class RoomsController {
  constructor(
    private readonly chat: ChatService,
    private readonly presence: PresenceService,
    private readonly moderation: ModerationService,
  ) {}

  @Put()
  @ApiOperation({
    summary: 'Create or replace a room',
    description:
      'Replaces: an omitted title, metadata or retentionDays becomes null. Making a room private takes the live connections of ' +
      'non-members out of it on every instance (each gets `room.removed`).',
  })
  @ApiBody({ schema: schemaRef('RoomSettings') })
  @ApiCreatedResponse({ description: 'The room was created', type: RoomModel })
  @ApiOkResponse({ description: 'The room existed and was replaced', type: RoomModel })
  @ApiErrors(400, 401, 403, 413, 503)
  async upsertRoom(@Param('roomId') roomId: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response) {
    const { room, created } = await this.chat.upsertRoom({ ...asObject(body), roomId });
    res.status(created ? 201 : 200);
    return room;
  }

  @Get()
  @ApiOperation({ summary: 'Read a room' })
  @ApiOkResponse({ type: RoomModel })
  @ApiErrors(400, 401, 404, 503)
  getRoom(@Param('roomId') roomId: string) {
    return this.chat.getRoom({ roomId });
  }

  @Put('members/:userId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Add a member, or set their role (idempotent)',
    description:
      'Without a body (or without `role`) a new member is a `member` and an existing one keeps their role. In a public ' +
      'room this records a role without making membership required to join.',
  })
  @ApiPathParam('userId', 'UserId')
  @ApiBody({ schema: schemaRef('MemberSettings'), required: false })
  @ApiNoContentResponse({ description: 'The user is a member, with the role asked for' })
  @ApiErrors(400, 401, 403, 404, 413, 503)
  async addMember(@Param('roomId') roomId: string, @Param('userId') userId: string, @Body() body: unknown): Promise<void> {
    await this.chat.addMember({ ...(body === undefined ? {} : asObject(body)), roomId, userId });
  }

  @Delete('members/:userId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Remove a member (idempotent)',
    description: "The user's live connections leave the room on every instance; each gets `room.removed`.",
  })
  @ApiPathParam('userId', 'UserId')
  @ApiNoContentResponse({ description: 'The user is not a member' })
  @ApiErrors(400, 401, 403, 404, 503)
  async removeMember(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.chat.removeMember({ roomId, userId });
  }

  @Get('members')
  @ApiOperation({ summary: 'List the members' })
  @ApiOkResponse({ type: MemberListModel })
  @ApiErrors(400, 401, 404, 503)
  async listMembers(@Param('roomId') roomId: string) {
    return { members: await this.chat.listMembers({ roomId }) };
  }

  @Get('presence')
  @ApiOperation({
    summary: 'List the users present',
    description:
      'Users with at least one live connection joined to the room, on any instance and transport. A dead ' +
      "instance's users disappear once its presence lease runs out (PRESENCE_LEASE_MS, about 4/3 of it at most).",
  })
  @ApiOkResponse({ type: PresenceListModel })
  @ApiErrors(400, 401, 404, 503)
  listPresence(@Param('roomId') roomId: string) {
    return this.presence.list(null, { roomId });
  }

  @Post('mutes/:userId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Mute a user in the room',
    description:
      "Until it ends (no durationMs: until unmuted) the user's message.send, message.edit and reaction.add in the room answer " +
      '`FORBIDDEN` with `details: { reason: "muted", until }`. In force on every instance before the answer; replaces an earlier mute.',
  })
  @ApiPathParam('userId', 'UserId')
  @ApiBody({ schema: schemaRef('MuteSettings'), required: false })
  @ApiNoContentResponse({ description: 'The user is muted' })
  @ApiErrors(400, 401, 403, 404, 413, 503)
  async mute(@Param('roomId') roomId: string, @Param('userId') userId: string, @Body() body: unknown): Promise<void> {
    await this.act('mute', roomId, userId, body);
  }

  @Delete('mutes/:userId')
  @HttpCode(204)
  @ApiOperation({ summary: 'End a mute (idempotent)' })
  @ApiPathParam('userId', 'UserId')
  @ApiNoContentResponse({ description: 'The user is not muted' })
  @ApiErrors(400, 401, 403, 404, 503)
  async unmute(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.act('unmute', roomId, userId);
  }

  @Post('bans/:userId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Ban a user from the room',
    description:
      "The user's connections leave the room on every instance before the answer (each gets `room.removed { roomId, reason: " +
      '"banned" }`); until it ends, room.join and every room request answer `FORBIDDEN` with `details: { reason: "banned", until }`.',
  })
  @ApiPathParam('userId', 'UserId')
  @ApiBody({ schema: schemaRef('BanSettings'), required: false })
  @ApiNoContentResponse({ description: 'The user is banned' })
  @ApiErrors(400, 401, 403, 404, 413, 503)
  async ban(@Param('roomId') roomId: string, @Param('userId') userId: string, @Body() body: unknown): Promise<void> {
    await this.act('ban', roomId, userId, body);
  }

  @Delete('bans/:userId')
  @HttpCode(204)
  @ApiOperation({ summary: 'End a ban (idempotent)' })
  @ApiPathParam('userId', 'UserId')
  @ApiNoContentResponse({ description: 'The user is not banned' })
  @ApiErrors(400, 401, 403, 404, 503)
  async unban(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.act('unban', roomId, userId);
  }

  @Post('kicks/:userId')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Kick a user out of the room',
    description:
      'The user\'s connections leave the room on every instance (`room.removed { roomId, reason: "kicked" }`); they may join again. ' +
      '503 while the service cannot reach Redis (the kick could not reach the other instances, nobody was kicked).',
  })
  @ApiPathParam('userId', 'UserId')
  @ApiNoContentResponse({ description: 'The user was kicked' })
  @ApiErrors(400, 401, 403, 404, 503)
  async kick(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.act('kick', roomId, userId);
  }

  @Get('bans')
  @ApiOperation({ summary: 'List the bans in force' })
  @ApiOkResponse({ type: BanListModel })
  @ApiErrors(400, 401, 404, 503)
  async listBans(@Param('roomId') roomId: string) {
    return { bans: (await this.moderation.list(null, { roomId })).bans };
  }

  @Get('mutes')
  @ApiOperation({ summary: 'List the mutes in force', description: "A mute's reason is null." })
  @ApiOkResponse({ type: MuteListModel })
  @ApiErrors(400, 401, 404, 503)
  async listMutes(@Param('roomId') roomId: string) {
    return { mutes: (await this.moderation.list(null, { roomId })).mutes };
  }

  /** A trusted action (`by: "api"`); a body, where one is allowed, adds durationMs (and a ban's reason). */
  private act(kind: ModerationKind, roomId: string, userId: string, body?: unknown) {
    return this.moderation.act(null, kind, { ...(body === undefined ? {} : asObject(body)), roomId, userId });
  }
}
