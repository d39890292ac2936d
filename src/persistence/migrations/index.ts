import { CreateRoomsAndMessages1764180000000 } from './1764180000000-CreateRoomsAndMessages.js';
import { CreateRoomMembers1764190000000 } from './1764190000000-CreateRoomMembers.js';
import { CreateAppendFunction1764200000000 } from './1764200000000-CreateAppendFunction.js';
import { CreateEventTables1764210000000 } from './1764210000000-CreateEventTables.js';
import { CreateRoomReads1764220000000 } from './1764220000000-CreateRoomReads.js';
import { BoundAppendLockWait1764300000000 } from './1764300000000-BoundAppendLockWait.js';
import { IndexRoomsListPages1764400000000 } from './1764400000000-IndexRoomsListPages.js';
import { AppendReportsMissingRooms1764500000000 } from './1764500000000-AppendReportsMissingRooms.js';
import { AddMessageChanges1764600000000 } from './1764600000000-AddMessageChanges.js';
import { AppendWithoutRepliesFastPath1764700000000 } from './1764700000000-AppendWithoutRepliesFastPath.js';
import { AddMemberRoles1764800000000 } from './1764800000000-AddMemberRoles.js';
import { AddRetention1764910000000 } from './1764910000000-AddRetention.js';
import { IndexUserData1765000000000 } from './1765000000000-IndexUserData.js';
import { AddRoomSanctions1765100000000 } from './1765100000000-AddRoomSanctions.js';
import { AddSlowMode1765200000000 } from './1765200000000-AddSlowMode.js';
import { TimeOrderedMessageIds1765300000000 } from './1765300000000-TimeOrderedMessageIds.js';

/** Every migration, oldest first. */
export const migrations = [
  CreateRoomsAndMessages1764180000000,
  CreateRoomMembers1764190000000,
  CreateAppendFunction1764200000000,
  CreateEventTables1764210000000,
  CreateRoomReads1764220000000,
  BoundAppendLockWait1764300000000,
  IndexRoomsListPages1764400000000,
  AppendReportsMissingRooms1764500000000,
  AddMessageChanges1764600000000,
  AppendWithoutRepliesFastPath1764700000000,
  AddMemberRoles1764800000000,
  AddRetention1764910000000,
  IndexUserData1765000000000,
  AddRoomSanctions1765100000000,
  AddSlowMode1765200000000,
  TimeOrderedMessageIds1765300000000,
];
