from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_LINEAR16: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_MULAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_ALAW: _ClassVar[AudioEncoding]

class SpeakerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_ROLE_UNSPECIFIED: _ClassVar[SpeakerRole]
    SPEAKER_ROLE_CUSTOMER: _ClassVar[SpeakerRole]
    SPEAKER_ROLE_AGENT: _ClassVar[SpeakerRole]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_LINEAR16: AudioEncoding
AUDIO_ENCODING_MULAW: AudioEncoding
AUDIO_ENCODING_ALAW: AudioEncoding
SPEAKER_ROLE_UNSPECIFIED: SpeakerRole
SPEAKER_ROLE_CUSTOMER: SpeakerRole
SPEAKER_ROLE_AGENT: SpeakerRole

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hertz", "channels", "language_code")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hertz: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelConfig]
    language_code: str
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelConfig, _Mapping]]] = ..., language_code: _Optional[str] = ...) -> None: ...

class ChannelConfig(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: SpeakerRole
    def __init__(self, role: _Optional[_Union[SpeakerRole, str]] = ...) -> None: ...

class CallConfig(_message.Message):
    __slots__ = ("call_id", "audio", "interim_results", "agent_replies", "record", "training_consent", "resume_token")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_REPLIES_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONSENT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    audio: AudioFormat
    interim_results: bool
    agent_replies: bool
    record: bool
    training_consent: bool
    resume_token: bytes
    def __init__(self, call_id: _Optional[str] = ..., audio: _Optional[_Union[AudioFormat, _Mapping]] = ..., interim_results: _Optional[bool] = ..., agent_replies: _Optional[bool] = ..., record: _Optional[bool] = ..., training_consent: _Optional[bool] = ..., resume_token: _Optional[bytes] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class EndOfCall(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseRecording(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeRecording(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DtmfEvent(_message.Message):
    __slots__ = ("digit",)
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    digit: str
    def __init__(self, digit: _Optional[str] = ...) -> None: ...

class StreamCallRequest(_message.Message):
    __slots__ = ("config", "audio", "end", "pause", "resume", "dtmf")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    DTMF_FIELD_NUMBER: _ClassVar[int]
    config: CallConfig
    audio: AudioChunk
    end: EndOfCall
    pause: PauseRecording
    resume: ResumeRecording
    dtmf: DtmfEvent
    def __init__(self, config: _Optional[_Union[CallConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., end: _Optional[_Union[EndOfCall, _Mapping]] = ..., pause: _Optional[_Union[PauseRecording, _Mapping]] = ..., resume: _Optional[_Union[ResumeRecording, _Mapping]] = ..., dtmf: _Optional[_Union[DtmfEvent, _Mapping]] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_seconds", "end_seconds", "probability")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_seconds: float
    end_seconds: float
    probability: float
    def __init__(self, word: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class TranscriptSegment(_message.Message):
    __slots__ = ("channel", "role", "text", "start_seconds", "end_seconds", "words", "is_final", "stability", "turn_index")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    channel: int
    role: SpeakerRole
    text: str
    start_seconds: float
    end_seconds: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    is_final: bool
    stability: float
    turn_index: int
    def __init__(self, channel: _Optional[int] = ..., role: _Optional[_Union[SpeakerRole, str]] = ..., text: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., turn_index: _Optional[int] = ...) -> None: ...

class CallError(_message.Message):
    __slots__ = ("code", "message", "error_id", "channel", "turn_index")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    error_id: str
    channel: int
    turn_index: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., error_id: _Optional[str] = ..., channel: _Optional[int] = ..., turn_index: _Optional[int] = ...) -> None: ...

class CallSummary(_message.Message):
    __slots__ = ("audio_seconds", "final_segments", "turns", "recorded", "paused_seconds", "dtmf_events", "redacted_entities")
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINAL_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DTMF_EVENTS_FIELD_NUMBER: _ClassVar[int]
    REDACTED_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    audio_seconds: float
    final_segments: int
    turns: int
    recorded: bool
    paused_seconds: float
    dtmf_events: int
    redacted_entities: int
    def __init__(self, audio_seconds: _Optional[float] = ..., final_segments: _Optional[int] = ..., turns: _Optional[int] = ..., recorded: _Optional[bool] = ..., paused_seconds: _Optional[float] = ..., dtmf_events: _Optional[int] = ..., redacted_entities: _Optional[int] = ...) -> None: ...

class AgentReply(_message.Message):
    __slots__ = ("turn_index", "delta", "is_final", "text", "interrupted", "sentences", "sentence_limit")
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    turn_index: int
    delta: str
    is_final: bool
    text: str
    interrupted: bool
    sentences: int
    sentence_limit: bool
    def __init__(self, turn_index: _Optional[int] = ..., delta: _Optional[str] = ..., is_final: _Optional[bool] = ..., text: _Optional[str] = ..., interrupted: _Optional[bool] = ..., sentences: _Optional[int] = ..., sentence_limit: _Optional[bool] = ...) -> None: ...

class StreamCallResponse(_message.Message):
    __slots__ = ("call_id", "transcript", "error", "summary", "agent_reply", "resume")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    AGENT_REPLY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    transcript: TranscriptSegment
    error: CallError
    summary: CallSummary
    agent_reply: AgentReply
    resume: CallResume
    def __init__(self, call_id: _Optional[str] = ..., transcript: _Optional[_Union[TranscriptSegment, _Mapping]] = ..., error: _Optional[_Union[CallError, _Mapping]] = ..., summary: _Optional[_Union[CallSummary, _Mapping]] = ..., agent_reply: _Optional[_Union[AgentReply, _Mapping]] = ..., resume: _Optional[_Union[CallResume, _Mapping]] = ...) -> None: ...

class CallResume(_message.Message):
    __slots__ = ("token", "audio_offset_seconds", "segment")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    audio_offset_seconds: float
    segment: int
    def __init__(self, token: _Optional[bytes] = ..., audio_offset_seconds: _Optional[float] = ..., segment: _Optional[int] = ...) -> None: ...

class DialogueTurn(_message.Message):
    __slots__ = ("role", "text")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    role: SpeakerRole
    text: str
    def __init__(self, role: _Optional[_Union[SpeakerRole, str]] = ..., text: _Optional[str] = ...) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("conversation_id", "turns")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    turns: _containers.RepeatedCompositeFieldContainer[DialogueTurn]
    def __init__(self, conversation_id: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[DialogueTurn, _Mapping]]] = ...) -> None: ...

class ConverseResponse(_message.Message):
    __slots__ = ("conversation_id", "delta", "is_final", "text")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    delta: str
    is_final: bool
    text: str
    def __init__(self, conversation_id: _Optional[str] = ..., delta: _Optional[str] = ..., is_final: _Optional[bool] = ..., text: _Optional[str] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("call_id", "audio", "data", "record", "training_consent")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    TRAINING_CONSENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    audio: AudioFormat
    data: bytes
    record: bool
    training_consent: bool
    def __init__(self, call_id: _Optional[str] = ..., audio: _Optional[_Union[AudioFormat, _Mapping]] = ..., data: _Optional[bytes] = ..., record: _Optional[bool] = ..., training_consent: _Optional[bool] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("call_id", "segments", "summary")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    segments: _containers.RepeatedCompositeFieldContainer[TranscriptSegment]
    summary: CallSummary
    def __init__(self, call_id: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[TranscriptSegment, _Mapping]]] = ..., summary: _Optional[_Union[CallSummary, _Mapping]] = ...) -> None: ...
