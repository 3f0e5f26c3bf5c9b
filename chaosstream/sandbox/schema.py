"""StreamSpace v2 database schema for the sandbox (docs/streamspace.md#1-database), plus sandbox-only tables.

``BASE_DDL`` reproduces what the API's ``Database.Migrate()`` creates (``api/internal/db/database.go``);
``MIGRATIONS_DDL`` adds what only the manual ``api/migrations/*.sql`` files add: migration 002's
``(agent_id,state)`` index, 004's ``agent_commands.updated_at`` + trigger and 007's session termination
columns. Tables named ``sandbox_*`` are not part of StreamSpace: they hold ground truth for benchmarks.

Timestamps: every column is ``TIMESTAMP`` (without time zone) holding **naive UTC**. Column defaults use
``(now() at time zone 'utc')`` and the control plane writes ``datetime.now(timezone.utc)`` stripped of its
tzinfo, so both paths agree whatever the server's TimeZone setting is.
"""

import hashlib
import hmac
import secrets

NOW = "(now() at time zone 'utc')"

BASE_DDL = f"""
CREATE TABLE IF NOT EXISTS organizations (
    id VARCHAR(255) PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    display_name VARCHAR(255),
    description TEXT,
    k8s_namespace VARCHAR(255) NOT NULL DEFAULT 'streamspace',
    status VARCHAR(50) DEFAULT 'active',
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW}
);

CREATE TABLE IF NOT EXISTS users (
    id VARCHAR(255) PRIMARY KEY,
    username VARCHAR(255) UNIQUE NOT NULL,
    email VARCHAR(255) UNIQUE NOT NULL,
    full_name VARCHAR(255),
    role VARCHAR(50) DEFAULT 'user',
    provider VARCHAR(50) DEFAULT 'local',
    active BOOLEAN DEFAULT true,
    password_hash VARCHAR(255),
    org_id VARCHAR(255) REFERENCES organizations(id) ON DELETE CASCADE,
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW},
    last_login TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_users_org_id ON users(org_id);

CREATE TABLE IF NOT EXISTS groups (
    id VARCHAR(255) PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    display_name VARCHAR(255),
    description TEXT,
    type VARCHAR(50) DEFAULT 'team',
    org_id VARCHAR(255) REFERENCES organizations(id) ON DELETE CASCADE,
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW}
);

CREATE TABLE IF NOT EXISTS repositories (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    url TEXT NOT NULL,
    branch VARCHAR(100) DEFAULT 'main',
    type VARCHAR(50) DEFAULT 'template',
    auth_type VARCHAR(50) DEFAULT 'none',
    last_sync TIMESTAMP,
    template_count INTEGER DEFAULT 0,
    status VARCHAR(50) DEFAULT 'pending',
    error_message TEXT,
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW}
);

CREATE TABLE IF NOT EXISTS catalog_templates (
    id SERIAL PRIMARY KEY,
    repository_id INTEGER REFERENCES repositories(id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT,
    category VARCHAR(100),
    app_type VARCHAR(50) DEFAULT 'desktop',
    icon_url TEXT,
    manifest JSONB NOT NULL,
    tags TEXT[],
    install_count INTEGER DEFAULT 0,
    is_featured BOOLEAN DEFAULT false,
    version VARCHAR(50),
    view_count INTEGER DEFAULT 0,
    avg_rating DECIMAL(3,2) DEFAULT 0,
    rating_count INTEGER DEFAULT 0,
    platform VARCHAR(50) DEFAULT 'kubernetes',
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW},
    UNIQUE (repository_id, name)
);
CREATE INDEX IF NOT EXISTS idx_catalog_templates_name ON catalog_templates(name);

CREATE TABLE IF NOT EXISTS agents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id VARCHAR(255) UNIQUE NOT NULL,
    platform VARCHAR(50) NOT NULL,
    region VARCHAR(100),
    status VARCHAR(50) DEFAULT 'offline',
    capacity JSONB,
    last_heartbeat TIMESTAMP,
    websocket_id VARCHAR(255),
    metadata JSONB,
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW},
    cluster_id VARCHAR(255),
    cluster_name VARCHAR(255),
    api_key_hash VARCHAR(255),
    api_key_created_at TIMESTAMP,
    api_key_last_used_at TIMESTAMP,
    org_id VARCHAR(255) REFERENCES organizations(id) ON DELETE CASCADE,
    approval_status VARCHAR(20) DEFAULT 'approved',
    approved_at TIMESTAMP,
    approved_by VARCHAR(255)
);
CREATE INDEX IF NOT EXISTS idx_agents_agent_id ON agents(agent_id);
CREATE INDEX IF NOT EXISTS idx_agents_platform ON agents(platform);
CREATE INDEX IF NOT EXISTS idx_agents_status ON agents(status);
CREATE INDEX IF NOT EXISTS idx_agents_region ON agents(region);
CREATE INDEX IF NOT EXISTS idx_agents_last_heartbeat ON agents(last_heartbeat);
CREATE INDEX IF NOT EXISTS idx_agents_cluster_id ON agents(cluster_id);
CREATE INDEX IF NOT EXISTS idx_agents_cluster_status ON agents(cluster_id, status);
CREATE INDEX IF NOT EXISTS idx_agents_api_key_hash ON agents(api_key_hash);
CREATE INDEX IF NOT EXISTS idx_agents_org_id ON agents(org_id);
CREATE INDEX IF NOT EXISTS idx_agents_approval_status ON agents(approval_status);
CREATE INDEX IF NOT EXISTS idx_agents_platform_status ON agents(platform, status);

CREATE TABLE IF NOT EXISTS agent_commands (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    command_id VARCHAR(255) UNIQUE NOT NULL,
    agent_id VARCHAR(255) REFERENCES agents(agent_id) ON DELETE CASCADE,
    session_id VARCHAR(255),
    action VARCHAR(50) NOT NULL,
    payload JSONB,
    status VARCHAR(50) DEFAULT 'pending',
    error_message TEXT,
    created_at TIMESTAMP DEFAULT {NOW},
    sent_at TIMESTAMP,
    acknowledged_at TIMESTAMP,
    completed_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_agent_commands_command_id ON agent_commands(command_id);
CREATE INDEX IF NOT EXISTS idx_agent_commands_agent_id ON agent_commands(agent_id);
CREATE INDEX IF NOT EXISTS idx_agent_commands_session_id ON agent_commands(session_id);
CREATE INDEX IF NOT EXISTS idx_agent_commands_status ON agent_commands(status);
CREATE INDEX IF NOT EXISTS idx_agent_commands_created_at ON agent_commands(created_at);
CREATE INDEX IF NOT EXISTS idx_agent_commands_action ON agent_commands(action);
CREATE INDEX IF NOT EXISTS idx_agent_commands_agent_status ON agent_commands(agent_id, status);

CREATE TABLE IF NOT EXISTS sessions (
    id VARCHAR(255) PRIMARY KEY,
    user_id VARCHAR(255) REFERENCES users(id) ON DELETE CASCADE,
    team_id VARCHAR(255) REFERENCES groups(id) ON DELETE SET NULL,
    template_name VARCHAR(255),
    state VARCHAR(50),
    app_type VARCHAR(50) DEFAULT 'desktop',
    active_connections INTEGER DEFAULT 0,
    url TEXT,
    namespace VARCHAR(255) DEFAULT 'streamspace',
    created_at TIMESTAMP DEFAULT {NOW},
    updated_at TIMESTAMP DEFAULT {NOW},
    last_connection TIMESTAMP,
    last_disconnect TIMESTAMP,
    snapshot_config JSONB DEFAULT '{{}}',
    platform VARCHAR(50) DEFAULT 'kubernetes',
    controller_id VARCHAR(255),
    pod_name VARCHAR(255),
    memory VARCHAR(50),
    cpu VARCHAR(50),
    idle_timeout VARCHAR(50),
    max_session_duration VARCHAR(50),
    persistent_home BOOLEAN DEFAULT false,
    last_activity TIMESTAMP,
    -- no ON DELETE action, as in Migrate(): deleting an agent that still has sessions fails
    agent_id VARCHAR(255) REFERENCES agents(agent_id),
    platform_metadata JSONB,
    cluster_id VARCHAR(255),
    tags TEXT[],
    org_id VARCHAR(255) DEFAULT 'default-org' REFERENCES organizations(id) ON DELETE CASCADE,
    streaming_protocol VARCHAR(50) DEFAULT 'vnc',
    streaming_port INTEGER DEFAULT 5900,
    streaming_path VARCHAR(255)
);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);
CREATE INDEX IF NOT EXISTS idx_sessions_team_id ON sessions(team_id);
CREATE INDEX IF NOT EXISTS idx_sessions_state ON sessions(state);
CREATE INDEX IF NOT EXISTS idx_sessions_user_state ON sessions(user_id, state);
CREATE INDEX IF NOT EXISTS idx_sessions_platform ON sessions(platform);
CREATE INDEX IF NOT EXISTS idx_sessions_controller_id ON sessions(controller_id);
CREATE INDEX IF NOT EXISTS idx_sessions_last_activity ON sessions(last_activity);
CREATE INDEX IF NOT EXISTS idx_sessions_org_id ON sessions(org_id);
CREATE INDEX IF NOT EXISTS idx_sessions_streaming_protocol ON sessions(streaming_protocol);
CREATE INDEX IF NOT EXISTS idx_sessions_agent_id ON sessions(agent_id);
CREATE INDEX IF NOT EXISTS idx_sessions_cluster_id ON sessions(cluster_id);
CREATE INDEX IF NOT EXISTS idx_sessions_tags ON sessions USING GIN(tags);
"""

# Not part of StreamSpace: ground truth for benchmarks (GET /sandbox/v1/events).
SANDBOX_DDL = f"""
CREATE TABLE IF NOT EXISTS sandbox_agent_events (
    id BIGSERIAL PRIMARY KEY,
    agent_id VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL,
    reason VARCHAR(100),
    connection_id VARCHAR(64),
    at TIMESTAMP NOT NULL DEFAULT {NOW}
);
CREATE INDEX IF NOT EXISTS idx_sandbox_agent_events_agent ON sandbox_agent_events(agent_id, at);

-- one row per UI connection of the VNC proxy (GET /sandbox/v1/streams)
CREATE TABLE IF NOT EXISTS sandbox_vnc_streams (
    connection_id VARCHAR(64) PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL,
    agent_id VARCHAR(255),
    user_id VARCHAR(255),
    opened_at TIMESTAMP NOT NULL,
    first_bytes_at TIMESTAMP,
    last_bytes_at TIMESTAMP,
    closed_at TIMESTAMP,
    close_reason VARCHAR(255),
    bytes_to_client BIGINT DEFAULT 0,
    frames_to_client BIGINT DEFAULT 0,
    bytes_from_client BIGINT DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_sandbox_vnc_streams_session ON sandbox_vnc_streams(session_id, opened_at);
"""

MIGRATIONS_DDL = f"""
-- 002_add_agent_tracking_to_sessions.sql (index only; its second FK is left out, see module doc)
CREATE INDEX IF NOT EXISTS idx_sessions_agent_state ON sessions(agent_id, state);

-- 004_add_updated_at_to_agent_commands.sql
ALTER TABLE agent_commands ADD COLUMN IF NOT EXISTS updated_at TIMESTAMP DEFAULT {NOW};
CREATE OR REPLACE FUNCTION update_agent_commands_updated_at() RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = {NOW};
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS trigger_agent_commands_updated_at ON agent_commands;
CREATE TRIGGER trigger_agent_commands_updated_at BEFORE UPDATE ON agent_commands
    FOR EACH ROW EXECUTE FUNCTION update_agent_commands_updated_at();

-- 007_add_session_termination_fields.sql
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS termination_reason VARCHAR(255);
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS terminated_at TIMESTAMP;
"""

FIREFOX_MANIFEST = {
    "apiVersion": "stream.space/v1alpha1",
    "kind": "Template",
    "metadata": {"name": "firefox-browser"},
    "spec": {
        "displayName": "Firefox Web Browser",
        "description": "Mozilla Firefox in a VNC desktop",
        "category": "Web Browsers",
        "baseImage": "lscr.io/linuxserver/firefox:latest",
        "defaultResources": {"memory": "2Gi", "cpu": "1000m"},
        "ports": [{"name": "vnc", "containerPort": 3000, "protocol": "TCP"}],
        "env": [],
        "volumeMounts": [{"name": "user-home", "mountPath": "/config"}],
        "vnc": {"enabled": True, "port": 3000},
        "capabilities": ["Network", "Audio", "Clipboard"],
        "tags": ["browser", "web"],
    },
}

PBKDF2_ITERATIONS = 20_000  # low on purpose: a sandbox, not a credential store


def hash_password(password: str, salt: str | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hex digest>`` (the real API uses bcrypt)."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS).hex()
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${digest}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    if not encoded:
        return False
    try:
        algo, iterations, salt, digest = encoded.split("$", 3)
    except ValueError:
        return False
    if algo != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(got, digest)
