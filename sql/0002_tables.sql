-- Every table of DESIGN §3. No column anywhere holds a raw IP address or user-agent
-- string: visitors are keyed hashes (bytea) and devices are reduced to families.

CREATE TABLE IF NOT EXISTS public.user_activity_events (
    event_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    user_id        uuid,
    visitor_hash   bytea,
    network_hash   bytea,
    session_id     uuid,
    event_type     text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    event_category text NOT NULL DEFAULT 'custom' CHECK (event_category IN (
        'navigation', 'quest', 'badge', 'tutor', 'community', 'auth', 'parent',
        'error', 'acquisition', 'custom')),
    page_path      text CHECK (char_length(page_path) <= 2000),
    page_title     text CHECK (char_length(page_title) <= 2000),
    referrer       text CHECK (char_length(referrer) <= 2000),
    utm_source     text CHECK (char_length(utm_source) <= 200),
    utm_medium     text CHECK (char_length(utm_medium) <= 200),
    utm_campaign   text CHECK (char_length(utm_campaign) <= 200),
    duration_ms    integer CHECK (duration_ms >= 0),
    load_time_ms   integer CHECK (load_time_ms >= 0),
    status_code    smallint CHECK (status_code BETWEEN 100 AND 599),
    source         text NOT NULL DEFAULT 'client' CHECK (source IN ('client', 'server')),
    event_data     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(event_data) = 'object'),
    browser        text CHECK (char_length(browser) <= 64),
    os             text CHECK (char_length(os) <= 64),
    device_type    text CHECK (device_type IN ('mobile', 'tablet', 'desktop', 'other'))
);
COMMENT ON TABLE public.user_activity_events IS
    'Every tracked event; event_id is the idempotency key. No raw IP or user agent is stored.';

CREATE TABLE IF NOT EXISTS public.user_sessions (
    session_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid,
    visitor_hash     bytea,
    started_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    ended_at         timestamptz,
    duration_seconds integer NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    page_count       integer NOT NULL DEFAULT 0 CHECK (page_count >= 0),
    event_count      integer NOT NULL DEFAULT 0 CHECK (event_count >= 0),
    is_bounce        boolean NOT NULL DEFAULT true,
    has_error        boolean NOT NULL DEFAULT false,
    is_app_launch    boolean NOT NULL DEFAULT false,
    browser          text,
    os               text,
    device_type      text CHECK (device_type IN ('mobile', 'tablet', 'desktop', 'other')),
    entry_page       text,
    exit_page        text,
    referrer         text,
    utm_source       text,
    utm_medium       text,
    utm_campaign     text,
    CHECK (last_seen_at >= started_at)
);

CREATE TABLE IF NOT EXISTS public.page_view_analytics (
    day                 date NOT NULL,
    page_path           text NOT NULL,
    total_views         integer NOT NULL DEFAULT 0 CHECK (total_views >= 0),
    unique_visitors     integer NOT NULL DEFAULT 0 CHECK (unique_visitors >= 0),
    bounce_rate         double precision CHECK (bounce_rate BETWEEN 0 AND 1),
    avg_load_time_ms    double precision CHECK (avg_load_time_ms >= 0),
    avg_time_on_page_ms double precision CHECK (avg_time_on_page_ms >= 0),
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, page_path)
);

CREATE TABLE IF NOT EXISTS public.learning_journey_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          uuid,
    occurred_at      timestamptz NOT NULL,
    milestone        text NOT NULL CHECK (milestone ~ '^[a-z][a-z0-9_]{0,63}$'),
    risk_score       double precision CHECK (risk_score BETWEEN 0 AND 1),
    engagement_level text CHECK (engagement_level IN ('high', 'medium', 'low', 'at_risk')),
    details          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    dedupe_key       text UNIQUE
);
COMMENT ON COLUMN public.learning_journey_events.dedupe_key IS
    'Makes jobs idempotent: e.g. the source event id of a milestone, or score:<user>:<day>.';

CREATE TABLE IF NOT EXISTS public.error_groups (
    group_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint    text NOT NULL UNIQUE,
    error_type     text NOT NULL CHECK (error_type IN ('javascript_error', 'api_error', 'network_error')),
    message        text,
    component_name text,
    api_endpoint   text,
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    occurrences    bigint NOT NULL DEFAULT 0 CHECK (occurrences >= 0),
    users_affected integer NOT NULL DEFAULT 0 CHECK (users_affected >= 0),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'ignored'))
);

CREATE TABLE IF NOT EXISTS public.error_events (
    error_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    user_id        uuid,
    visitor_hash   bytea,
    session_id     uuid,
    error_type     text NOT NULL CHECK (error_type IN ('javascript_error', 'api_error', 'network_error')),
    message        text CHECK (char_length(message) <= 2000),
    stack          text CHECK (char_length(stack) <= 8000),
    component_name text CHECK (char_length(component_name) <= 200),
    page_path      text CHECK (char_length(page_path) <= 2000),
    api_endpoint   text CHECK (char_length(api_endpoint) <= 2000),
    http_method    text CHECK (char_length(http_method) <= 16),
    status_code    smallint CHECK (status_code BETWEEN 100 AND 599),
    source         text NOT NULL DEFAULT 'client' CHECK (source IN ('client', 'server')),
    browser        text,
    os             text,
    device_type    text CHECK (device_type IN ('mobile', 'tablet', 'desktop', 'other')),
    event_data     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(event_data) = 'object'),
    fingerprint    text NOT NULL,
    group_id       bigint REFERENCES public.error_groups (group_id) ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS public.tracking_salts (
    period_start timestamptz PRIMARY KEY,
    salt         bytea NOT NULL CHECK (octet_length(salt) = 32),
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.tracking_salts IS
    'One random salt per salt period; hard-deleted (and vacuumed) once the period is over.';

CREATE TABLE IF NOT EXISTS public.privacy_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL CHECK (action IN (
        'salt_created', 'salt_destroyed', 'anonymize', 'purge', 'forget', 'export')),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object')
);
COMMENT ON TABLE public.privacy_audit IS
    'What the privacy machinery did. Never key material, never a user id in clear.';

CREATE TABLE IF NOT EXISTS public.guardian_links (
    parent_id  uuid NOT NULL,
    student_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (parent_id, student_id),
    CHECK (parent_id <> student_id)
);
