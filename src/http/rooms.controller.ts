import { Body, Controller, Delete, Get, HttpCode, Param, Put, Res, UseGuards } from '@nestjs/common';
import type { Response } from 'express';
import { ChatService } from '../chat/chat.service.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { asObject } from './request-body.js';

/** Rooms and membership for backend services: one-line delegations to ChatService. */
@Controller('v1/rooms/:roomId')
@UseGuards(ApiKeyGuard)
export class RoomsController {
  constructor(private readonly chat: ChatService) {}

  @Put()
  async upsert(@Param('roomId') roomId: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response) {
    const { room, created } = await this.chat.upsertRoom({ ...asObject(body), roomId });
    res.status(created ? 201 : 200);
    return room;
  }

  @Get()
  get(@Param('roomId') roomId: string) {
    return this.chat.getRoom({ roomId });
  }

  @Put('members/:userId')
  @HttpCode(204)
  async addMember(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.chat.addMember({ roomId, userId });
  }

  @Delete('members/:userId')
  @HttpCode(204)
  async removeMember(@Param('roomId') roomId: string, @Param('userId') userId: string): Promise<void> {
    await this.chat.removeMember({ roomId, userId });
  }

  @Get('members')
  async members(@Param('roomId') roomId: string) {
    return { members: await this.chat.listMembers({ roomId }) };
  }
}
