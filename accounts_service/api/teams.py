"""REST API v1 of teams: the caller's teams (and their ids), members and invitations (sent, and mailed to the
caller), the team's audit log."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service import services
from accounts_service.api.base import TeamScopedApi
from accounts_service.api.utils import (
    StrictCharField,
    StrictDateTimeField,
    StrictInputSerializer,
    name_field,
    paginated,
    paginated_response,
)
from accounts_service.models import AuditEvent, TeamMembership
from accounts_service.rights import OWNER
from accounts_service.selectors import (
    audit_list,
    invitations_open_for,
    team_list_for_user,
    team_member_get,
    team_member_list,
)

# ------------------------------------------------------------------------------------------------
# Teams
# ------------------------------------------------------------------------------------------------


class TeamOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    personal = serializers.BooleanField(source="is_personal")
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices, help_text="the caller's role in the team")
    created_at = serializers.DateTimeField()


class TeamListCreateApi(APIView):
    """``GET/POST /api/v1/teams/``: the caller's teams with their ids (what ``POST /accounts/`` takes as
    ``team``); a new team has the caller as its owner and a default account on the free plan (as on the web)."""

    class InputSerializer(StrictInputSerializer):
        name = name_field(max_length=100)

    OutputSerializer = TeamOutputSerializer
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_teams_list", responses=paginated(OutputSerializer, "PaginatedTeamList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=team_list_for_user(user=request.user),
                                  serializer_class=self.OutputSerializer, request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = services.team_create(name=serializer.validated_data["name"], actor=request.user, default_account=True)
        team.role = OWNER
        return Response(self.OutputSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailApi(TeamScopedApi):
    """``GET /api/v1/teams/{team_id}/``: one of the caller's teams."""

    OutputSerializer = TeamOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, team_id: int) -> Response:
        self.team.role = self.role
        return Response(self.OutputSerializer(self.team).data)


# ------------------------------------------------------------------------------------------------
# Members and invitations
# ------------------------------------------------------------------------------------------------


class MemberOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the membership's id (the {member_id} of the member's route)")
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices)
    joined_at = serializers.DateTimeField(source="created_at")


class MemberListCreateApi(TeamScopedApi):
    """``GET/POST /api/v1/teams/{team_id}/members/``: the members; an owner invites an email with a role (the
    invitation is mailed, as from the web, and works once, for that email)."""

    owner_methods = frozenset({"POST"})

    class InputSerializer(StrictInputSerializer):
        email = serializers.EmailField(max_length=254)
        role = serializers.ChoiceField(choices=TeamMembership.Role.choices, default=TeamMembership.Role.MEMBER)

    class OutputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=TeamMembership.Role.choices)
        expires_at = serializers.DateTimeField()

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_teams_members_list",
                   responses=paginated(MemberOutputSerializer, "PaginatedMemberList"))
    def get(self, request: Request, team_id: int) -> Response:
        return paginated_response(queryset=team_member_list(team=self.team), serializer_class=MemberOutputSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, team_id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(team=self.team, actor=request.user,
                                                base_url=request.build_absolute_uri("/").rstrip("/"),
                                                **serializer.validated_data)
        return Response(self.OutputSerializer(invitation).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(TeamScopedApi):
    """``GET/PATCH/DELETE /api/v1/teams/{team_id}/members/{member_id}/``: an owner changes a role or removes a
    member (a member may remove themselves: leave); the last owner can be neither demoted nor removed (409)."""

    owner_methods = frozenset({"PATCH"})

    class InputSerializer(StrictInputSerializer):
        role = serializers.ChoiceField(choices=TeamMembership.Role.choices, required=False)

    OutputSerializer = MemberOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, team_id: int, member_id: int) -> Response:
        return Response(self.OutputSerializer(team_member_get(team=self.team, member_id=member_id)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request: Request, team_id: int, member_id: int) -> Response:
        membership = team_member_get(team=self.team, member_id=member_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "role" in serializer.validated_data:  # (a PATCH names only what changes)
            membership = services.member_role_set(team=self.team, membership=membership, actor=request.user,
                                                  role=serializer.validated_data["role"])
        return Response(self.OutputSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, team_id: int, member_id: int) -> Response:
        membership = team_member_get(team=self.team, member_id=member_id)
        services.member_remove(team=self.team, membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the {invitation_id} of the accept route")
    team_id = serializers.IntegerField()
    team = serializers.CharField(source="team.name")
    role = serializers.ChoiceField(choices=TeamMembership.Role.choices)
    email = serializers.EmailField()
    invited_by = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()

    def get_invited_by(self, invitation) -> str | None:
        inviter = invitation.invited_by
        return (inviter.email or inviter.get_username()) if inviter is not None else None


class InvitationListApi(APIView):
    """``GET /api/v1/invitations/``: the open invitations mailed to the caller's (verified) email, to teams they
    are not in yet; the same list the dashboard shows."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_invitations_list",
                   responses=paginated(InvitationOutputSerializer, "PaginatedInvitationList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=invitations_open_for(user=request.user),
                                  serializer_class=InvitationOutputSerializer, request=request, view=self)


class InvitationAcceptApi(APIView):
    """``POST /api/v1/invitations/{invitation_id}/accept``: join the team of an open invitation mailed to the
    caller's own email (404 for any other, as for an unknown id); the membership is the answer."""

    @extend_schema(request=None, responses={200: MemberOutputSerializer})
    def post(self, request: Request, invitation_id: int) -> Response:
        membership = services.invitation_accept_own(invitation_id=invitation_id, actor=request.user)
        return Response(MemberOutputSerializer(membership).data)


# ------------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------------


class AuditEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name", help_text="a username, or platform")
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices)
    target = serializers.CharField(help_text="a public key, an email, a token prefix or a team slug")
    detail = serializers.DictField(help_text="what changed: {field: {before, after}} for updates")


class TeamAuditApi(TeamScopedApi):
    """``GET /api/v1/teams/{team_id}/audit/``: every change to the team's objects, newest first, filterable."""

    class FilterSerializer(StrictInputSerializer):
        # (blank: no filter; no length limit: a value longer than any stored one matches nothing)
        action = StrictCharField(required=False, allow_blank=True, help_text="an action, or a prefix ending in '.'")
        target = StrictCharField(required=False, allow_blank=True)
        actor = StrictCharField(required=False, allow_blank=True)
        since = StrictDateTimeField(required=False, help_text="RFC 3339, inclusive")
        until = StrictDateTimeField(required=False, help_text="RFC 3339, exclusive")

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_teams_audit_list",
                   parameters=[OpenApiParameter("action", OpenApiTypes.STR, description="e.g. account.update, or"
                                                " account. for every account action"),
                               OpenApiParameter("target", OpenApiTypes.STR),
                               OpenApiParameter("actor", OpenApiTypes.STR, description="a username, or platform"),
                               OpenApiParameter("since", OpenApiTypes.DATETIME),
                               OpenApiParameter("until", OpenApiTypes.DATETIME)],
                   responses=paginated(AuditEventOutputSerializer, "PaginatedAuditEventList"))
    def get(self, request: Request, team_id: int) -> Response:
        filters = self.FilterSerializer(data={k: v for k, v in request.query_params.items()
                                              if k in self.FilterSerializer().fields})
        filters.is_valid(raise_exception=True)
        return paginated_response(queryset=audit_list(team=self.team, **filters.validated_data),
                                  serializer_class=AuditEventOutputSerializer, request=request, view=self)



