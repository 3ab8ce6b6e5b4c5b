"""Profiles: what anyone may see of a user, and the user changing their own (display name,
avatar). The avatar image is the files service's to make (it checks that the caller may
download the upload and that it is an image); auth keeps its URL. A change is announced as
`profile.changed`, from which chat tells the user's friends and devices."""
from services.auth.domain.ports import AvatarMaker, Profile, ProfileEvents, UserStore
from shared.contracts import auth
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.wire import Caller

NO_SUCH_USER = "no such user"


def public_profile(profile: Profile) -> auth.UserProfile:
    return auth.UserProfile(
        user_id=profile.user_id, username=profile.username, display_name=profile.display_name,
        avatar_url=profile.avatar_url,
    )


async def get_profile(request: auth.ProfileGet, users: UserStore) -> auth.UserProfile:
    found = await users.profiles([request.user_id])
    if not found:
        raise ParleyError.not_found(NO_SUCH_USER)
    return public_profile(found[0])


async def _avatar_url(file_id: str, caller: Caller, avatars: AvatarMaker) -> str:
    try:
        return await avatars.make_avatar(file_id, caller)
    except ParleyError as exc:
        if exc.code == ErrorCode.BAD_REQUEST:  # the file is no image: say which field
            raise ParleyError.bad_request(f"data.avatar_file_id: {exc.message}") from None
        raise


async def update_profile(
    request: auth.ProfileUpdate, caller: Caller, users: UserStore, avatars: AvatarMaker, events: ProfileEvents
) -> auth.UserProfile:
    """Change what the request names; the avatar is made before anything is stored, so a
    refused image changes nothing. Announced only when something was given."""
    if caller.user_id is None:
        raise ParleyError.unauthorized()
    if request.avatar_file_id is not None and request.clear_avatar:
        raise ParleyError.bad_request("data.clear_avatar: give avatar_file_id or clear_avatar, not both")
    avatar_url = None
    if request.avatar_file_id is not None:
        avatar_url = await _avatar_url(request.avatar_file_id, caller, avatars)
    updated = await users.update_profile(caller.user_id, request.display_name, avatar_url, request.clear_avatar)
    if updated is None:
        raise ParleyError.not_found(NO_SUCH_USER)
    profile = public_profile(updated)
    if request.display_name is not None or avatar_url is not None or request.clear_avatar:
        await events.changed(profile)
    return profile
