import datetime

from confide.v1 import call_pb2 as _call_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TimeRange(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("range", "page_size", "page_token")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    page_size: int
    page_token: str
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class StoredCall(_message.Message):
    __slots__ = ("call_id", "start_time", "end_time", "audio_seconds", "turns", "final_segments", "agent_replies", "status", "legal_hold", "text_purged", "text_expire_time", "training_consent")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    FINAL_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_REPLIES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    TEXT_PURGED_FIELD_NUMBER: _ClassVar[int]
    TEXT_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONSENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    audio_seconds: float
    turns: int
    final_segments: int
    agent_replies: int
    status: str
    legal_hold: bool
    text_purged: bool
    text_expire_time: _timestamp_pb2.Timestamp
    training_consent: bool
    def __init__(self, call_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audio_seconds: _Optional[float] = ..., turns: _Optional[int] = ..., final_segments: _Optional[int] = ..., agent_replies: _Optional[int] = ..., status: _Optional[str] = ..., legal_hold: _Optional[bool] = ..., text_purged: _Optional[bool] = ..., text_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., training_consent: _Optional[bool] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[StoredCall]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[StoredCall, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCallStatsRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class GetCallStatsResponse(_message.Message):
    __slots__ = ("calls", "audio_seconds", "turns", "final_segments", "agent_replies", "calls_on_legal_hold", "calls_by_status")
    class CallsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CALLS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    FINAL_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_REPLIES_FIELD_NUMBER: _ClassVar[int]
    CALLS_ON_LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    CALLS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    calls: int
    audio_seconds: float
    turns: int
    final_segments: int
    agent_replies: int
    calls_on_legal_hold: int
    calls_by_status: _containers.ScalarMap[str, int]
    def __init__(self, calls: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., turns: _Optional[int] = ..., final_segments: _Optional[int] = ..., agent_replies: _Optional[int] = ..., calls_on_legal_hold: _Optional[int] = ..., calls_by_status: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetCallRequest(_message.Message):
    __slots__ = ("call_id", "raw", "purpose")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    raw: bool
    purpose: str
    def __init__(self, call_id: _Optional[str] = ..., raw: _Optional[bool] = ..., purpose: _Optional[str] = ...) -> None: ...

class StoredSegment(_message.Message):
    __slots__ = ("channel", "role", "turn_index", "start_seconds", "end_seconds", "text")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: _call_pb2.SpeakerRole
    turn_index: int
    start_seconds: float
    end_seconds: float
    text: str
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[_call_pb2.SpeakerRole, str]] = ..., turn_index: _Optional[int] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class StoredReply(_message.Message):
    __slots__ = ("turn_index", "text", "interrupted")
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    turn_index: int
    text: str
    interrupted: bool
    def __init__(self, turn_index: _Optional[int] = ..., text: _Optional[str] = ..., interrupted: _Optional[bool] = ...) -> None: ...

class GetCallResponse(_message.Message):
    __slots__ = ("call", "segments", "replies", "raw_segments", "unreadable")
    CALL_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    RAW_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    call: StoredCall
    segments: _containers.RepeatedCompositeFieldContainer[StoredSegment]
    replies: _containers.RepeatedCompositeFieldContainer[StoredReply]
    raw_segments: _containers.RepeatedCompositeFieldContainer[StoredSegment]
    unreadable: int
    def __init__(self, call: _Optional[_Union[StoredCall, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[StoredSegment, _Mapping]]] = ..., replies: _Optional[_Iterable[_Union[StoredReply, _Mapping]]] = ..., raw_segments: _Optional[_Iterable[_Union[StoredSegment, _Mapping]]] = ..., unreadable: _Optional[int] = ...) -> None: ...

class DeleteCallRequest(_message.Message):
    __slots__ = ("call_id", "purpose")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    purpose: str
    def __init__(self, call_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class DeleteCallResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("call_id", "hold", "purpose")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    hold: bool
    purpose: str
    def __init__(self, call_id: _Optional[str] = ..., hold: _Optional[bool] = ..., purpose: _Optional[str] = ...) -> None: ...

class SetLegalHoldResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: StoredCall
    def __init__(self, call: _Optional[_Union[StoredCall, _Mapping]] = ...) -> None: ...

class ExportTrainingDataRequest(_message.Message):
    __slots__ = ("range", "purpose")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    purpose: str
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ..., purpose: _Optional[str] = ...) -> None: ...

class ExportTrainingDataResponse(_message.Message):
    __slots__ = ("call_key", "segments")
    CALL_KEY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    call_key: str
    segments: _containers.RepeatedCompositeFieldContainer[StoredSegment]
    def __init__(self, call_key: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[StoredSegment, _Mapping]]] = ...) -> None: ...

class GetAuditLogRequest(_message.Message):
    __slots__ = ("after_sequence", "page_size")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    page_size: int
    def __init__(self, after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("sequence", "time", "actor_fingerprint", "actor_tenant", "actor_role", "action", "target", "purpose", "outcome", "error_id", "detail_json", "hash", "previous_hash")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_TENANT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    actor_fingerprint: str
    actor_tenant: str
    actor_role: str
    action: str
    target: str
    purpose: str
    outcome: str
    error_id: str
    detail_json: str
    hash: str
    previous_hash: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor_fingerprint: _Optional[str] = ..., actor_tenant: _Optional[str] = ..., actor_role: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., purpose: _Optional[str] = ..., outcome: _Optional[str] = ..., error_id: _Optional[str] = ..., detail_json: _Optional[str] = ..., hash: _Optional[str] = ..., previous_hash: _Optional[str] = ...) -> None: ...

class GetAuditLogResponse(_message.Message):
    __slots__ = ("records", "next_after_sequence")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    next_after_sequence: int
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_after_sequence: _Optional[int] = ...) -> None: ...
