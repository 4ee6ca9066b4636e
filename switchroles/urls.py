from django.urls import path

from switchroles import drift_views, leaver_views, people_views, template_views, views, webhook_views

app_name = "switchroles"

urlpatterns = [
    # the directory
    path("links/", views.directory, name="directory"),
    path("links/aws-status/", views.directory_aws_status, name="directory_aws_status"),
    path("links/export/extend-switch-roles.txt", views.export_extend_switch_roles, name="export_extend_switch_roles"),
    path("links/export/aws-config", views.export_aws_config, name="export_aws_config"),
    path("links/<int:role_id>/why/", views.why, name="why"),
    path("links/<int:role_id>/favourite/", views.favourite, name="favourite"),
    path("go/<int:role_id>/", views.go, name="go"),
    # grants and teams (managers change, auditors read)
    path("grants/", views.grant_list, name="grant_list"),
    path("grants/new/", views.grant_new, name="grant_new"),
    path("grants/<int:grant_id>/", views.grant_detail, name="grant_detail"),
    path("grants/<int:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("teams/", views.team_list, name="team_list"),
    path("teams/new/", views.team_new, name="team_new"),
    path("teams/<int:team_id>/", views.team_detail, name="team_detail"),
    path("teams/<int:team_id>/members/add/", views.team_member_add, name="team_member_add"),
    path("teams/<int:team_id>/members/<int:person_id>/remove/", views.team_member_remove, name="team_member_remove"),
    # main-account enforcement and drift
    path("enforcement/", views.enforcement, name="enforcement"),
    path("enforcement/check/", views.enforcement_check, name="enforcement_check"),
    # drift between AWS and the portal (managers repair, auditors read)
    path("drift/", drift_views.drift_page, name="drift"),
    path("drift/check/", drift_views.drift_check_now, name="drift_check"),
    path("drift/findings/<int:finding_id>/repair/", drift_views.drift_repair, name="drift_repair"),
    path("drift/main-account/repair/", drift_views.drift_repair_main_account, name="drift_repair_main_account"),
    # effective access: what AWS really allows from the main account
    path("drift/access/check/", drift_views.access_check_now, name="access_check"),
    path("drift/access/trust-rollout/", drift_views.trust_rollout, name="trust_rollout"),
    path("drift/access/findings.csv", drift_views.access_findings_csv, name="access_findings_csv"),
    # role template roll-outs (the templates' own pages are in template_urls)
    path("templates/<int:template_id>/rollout/", template_views.template_rollout, name="template_rollout"),
    path("templates/<int:template_id>/rollout/<int:part_id>/retry/", template_views.rollout_account_retry_view,
         name="rollout_account_retry"),
    # people (managers)
    path("people/", people_views.people_list, name="people_list"),
    path("people/new/", people_views.person_new, name="person_new"),
    path("people/<int:person_id>/", people_views.person_edit, name="person_edit"),
    # leavers and separation of duties (issue 18)
    path("people/<int:person_id>/leave/", leaver_views.person_leave, name="person_leave"),
    path("people/departures/<int:departure_id>/", leaver_views.departure_detail, name="departure_detail"),
    path("people/departures/<int:departure_id>/retry/", leaver_views.departure_retry, name="departure_retry"),
    path("people/conflicts/", leaver_views.duty_conflicts_page, name="duty_conflicts"),
    path("teams/<int:team_id>/webhook/", webhook_views.team_webhook, name="team_webhook"),
]
