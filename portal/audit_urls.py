from django.urls import path

from portal import audit_views

app_name = "audit"

urlpatterns = [
    path("", audit_views.index, name="index"),
    path("access.csv", audit_views.access_csv, name="access_csv"),
    path("links/<int:role_id>/", audit_views.link_detail, name="link_history"),
    path("people/<int:person_id>/", audit_views.person_detail, name="person_history"),
    path("events/", audit_views.events, name="events"),
    path("events.csv", audit_views.events_csv, name="events_csv"),
    path("clients/<int:client_id>/evidence.zip", audit_views.evidence_pack, name="evidence_pack"),
    path("reviews/", audit_views.review_list, name="review_list"),
    path("reviews/new/", audit_views.review_new, name="review_new"),
    path("reviews/<int:review_id>/", audit_views.review_detail, name="review_detail"),
    path("reviews/<int:review_id>/items/<int:item_id>/decide/", audit_views.review_decide, name="review_decide"),
    path("reviews/<int:review_id>/review.csv", audit_views.review_csv, name="review_csv"),
]
