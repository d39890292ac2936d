import { MessageEntity } from './message.entity.js';
import { RoomMemberEntity } from './room-member.entity.js';
import { RoomEntity } from './room.entity.js';

export const entities = [RoomEntity, MessageEntity, RoomMemberEntity];
